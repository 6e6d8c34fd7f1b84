"""SUBSCRIBE dialogs, as notifier (create_uas) and as subscriber (create_uac method='SUBSCRIBE')."""
from __future__ import annotations

import queue

from helpers import LOOPBACK
from itest_support import WAIT, complete, get, invoke

from drachtio_srf.errors import DrachtioError

PIDF = ('<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'entity="sip:service@127.0.0.1"/>')


def notify_opts(state: str) -> dict:
    return {"method": "NOTIFY", "body": PIDF,
            "headers": {"Event": "presence", "Subscription-State": state,
                        "Content-Type": "application/pidf+xml"}}


def accept_subscriptions(srf, style) -> queue.Queue:
    """srf.subscribe answering with create_uas (202); the queue gets (req, dialog) or an error."""
    answered: queue.Queue = queue.Queue()

    def on_subscribe(req, res):
        def then(err, dialog):
            answered.put(err if err is not None else (req, dialog))
        complete(style, then, srf.create_uas, req, res, opts={"headers": {"Expires": "900"}})

    srf.subscribe(on_subscribe)
    return answered


def test_uas_subscription_ended_by_unsubscribe_and_destroy(srf, server, far_end, style):
    """202 to the SUBSCRIBE gives a SUBSCRIBE dialog; an in-dialog SUBSCRIBE with Expires: 0 is
    answered 202 and fires `unsubscribe`; destroy() sends NOTIFY Subscription-State: terminated."""
    answered = accept_subscriptions(srf, style)
    unsubscribed: queue.Queue = queue.Queue()
    destroyed: queue.Queue = queue.Queue()
    sipp = far_end("subscribe-unsubscribe.xml", server.sip_port)
    got = get(answered, "create_uas for the SUBSCRIBE")
    assert not isinstance(got, BaseException), f"create_uas failed: {got!r}"
    _req, dialog = got

    def on_unsubscribe(sub, reason):
        unsubscribed.put((sub, reason))
        complete(style, lambda err, msg: destroyed.put(err or msg), dialog.destroy)

    dialog.on("unsubscribe", on_unsubscribe)
    assert dialog.type == "uas" and dialog.dialog_type == "SUBSCRIBE"
    assert dialog.subscribe_event == "presence"
    assert dialog.subscriptions == [f"service@{LOOPBACK}:presence"]
    assert dialog.get_count_of_subscriptions() == 1
    assert srf.find_dialog_by_id(dialog.id) is dialog

    res = invoke(style, dialog.request, opts=notify_opts("active;expires=900")).result(WAIT)
    assert res.status == 200
    sub, reason = get(unsubscribed, "the unsubscribe event")
    assert reason == "unsubscribe" and sub.method == "SUBSCRIBE" and sub.get("Expires") == "0"
    notify = get(destroyed, "destroy() to send the final NOTIFY")
    assert not isinstance(notify, BaseException), f"destroy failed: {notify!r}"
    sipp.expect_success()     # sipp checked 202, 202 and the terminated NOTIFY
    assert notify.method == "NOTIFY"
    assert notify.get("Subscription-State").startswith("terminated")
    assert notify.get("Event") == "presence"
    assert dialog.connected is False
    assert srf.find_dialog_by_id(dialog.id) is None


def test_uas_notify_terminated_ends_the_dialog_on_both_sides(srf, server, far_end, style):
    """The app's NOTIFY with Subscription-State: terminated removes the last subscription: the
    dialog emits `destroy`, and the server forgets the dialog too."""
    answered = accept_subscriptions(srf, style)
    sipp = far_end("subscribe-notified-until-terminated.xml", server.sip_port)
    got = get(answered, "create_uas for the SUBSCRIBE")
    assert not isinstance(got, BaseException), f"create_uas failed: {got!r}"
    _req, dialog = got
    destroyed: queue.Queue = queue.Queue()
    dialog.on("destroy", lambda *args: destroyed.put(args))

    assert invoke(style, dialog.request, opts=notify_opts("active;expires=900")).result(WAIT).status == 200
    assert dialog.connected and dialog.get_count_of_subscriptions() == 1
    res = invoke(style, dialog.request, opts=notify_opts("terminated;reason=timeout")).result(WAIT)
    assert res.status == 200
    args = get(destroyed, "the destroy event after the terminated NOTIFY")
    sipp.expect_success()
    assert args[0].method == "NOTIFY"
    assert dialog.get_count_of_subscriptions() == 0
    assert dialog.connected is False and srf.find_dialog_by_id(dialog.id) is None
    err = invoke(style, dialog.request, opts={"method": "INFO"}).exception(WAIT)
    assert isinstance(err, DrachtioError) and "unable to find dialog" in str(err)


def test_uac_subscription_ends_on_terminated_notify(srf, far_end, style):
    """create_uac(method='SUBSCRIBE') gives a dialog on the 202; the notifier's NOTIFYs reach the
    `notify` listener, and the terminated one ends the dialog here and on the server (B7 fixed)."""
    sipp = far_end("notify-active-then-terminated.xml")
    notifies: queue.Queue = queue.Queue()
    destroyed: queue.Queue = queue.Queue()
    dialogs: queue.Queue = queue.Queue()
    at_creation: list[list[str]] = []

    def on_notify(req, res):
        notifies.put(req)
        res.send(200)

    def then(err, dialog):
        if err is None:
            # read here, ahead of the NOTIFYs: by the time the test thread looks, the
            # terminated NOTIFY may already have ended the subscription
            at_creation.append(list(dialog.subscriptions))
            dialog.on("notify", on_notify)
            dialog.on("destroy", lambda *args: destroyed.put(args))
        dialogs.put(err or dialog)

    complete(style, then, srf.create_uac, f"sip:farend@{LOOPBACK}:{sipp.port}",
             opts={"method": "SUBSCRIBE",
                   "headers": {"Event": "presence", "Expires": "900", "Accept": "application/pidf+xml"}})
    dialog = get(dialogs, "create_uac SUBSCRIBE")
    assert not isinstance(dialog, BaseException), f"create_uac failed: {dialog!r}"
    assert dialog.type == "uac" and dialog.dialog_type == "SUBSCRIBE"
    assert dialog.subscribe_event == "presence"
    assert at_creation == [[f"farend@{LOOPBACK}:presence"]]
    assert dialog.sip.remote_tag == "notifier-1"

    first = get(notifies, "the active NOTIFY")
    second = get(notifies, "the terminated NOTIFY")
    args = get(destroyed, "the destroy event")
    sipp.expect_success()
    assert first.get("Subscription-State").startswith("active")
    assert second.get("Subscription-State").startswith("terminated")
    assert "presence" in first.body
    assert args[0] is second
    assert dialog.connected is False and srf.find_dialog_by_id(dialog.id) is None
    err = invoke(style, dialog.request,
                 opts={"method": "SUBSCRIBE", "headers": {"Event": "presence", "Expires": "0"}}).exception(WAIT)
    assert isinstance(err, DrachtioError) and "unable to find dialog" in str(err)
