"""JS aliases and option normalisation; the public package surface."""
from __future__ import annotations

import drachtio_srf
from drachtio_srf import Dialog, Request, Response, SipError, Srf
from drachtio_srf.models import SipEndpointInfo, SipInfo
from drachtio_srf.names import normalize_opts


def test_js_aliases_are_the_same_objects():
    assert Srf.createUAS is Srf.create_uas
    assert Srf.createUAC is Srf.create_uac
    assert Srf.findDialogByCallIDAndFromTag is Srf.find_dialog_by_call_id_and_from_tag
    assert Srf.parseUri is Srf.parse_uri
    assert Dialog.onHold is Dialog.on_hold and Dialog.dialogType is Dialog.dialog_type
    assert Dialog.toJSON is Dialog.to_json
    assert Response.statusCode is Response.status_code
    assert Response.finalResponseSent is Response.final_response_sent


def test_sip_info_aliases_read_and_write():
    info = SipInfo(call_id="c", local_tag="l", remote_tag="r")
    assert (info.callId, info.localTag, info.remoteTag) == ("c", "l", "r")
    info.localTag = "x"
    assert info.local_tag == "x"
    assert SipEndpointInfo(uri="sip:a", sdp=None).contact is None


def test_normalize_opts_maps_js_keys_and_keeps_headers():
    o = normalize_opts({"localSdp": "v=0", "noAck": True, "callingNumber": "123",
                        "followRedirects": True, "keepUriOnRedirect": True, "enablePing": True,
                        "headers": {"X-My-Header": "1"}, "reconnect": {"retryMaxDelay": 5}},
                       proxy="sip:p", no_ack=None)
    assert o == {"local_sdp": "v=0", "no_ack": True, "calling_number": "123", "follow_redirects": True,
                 "keep_uri_on_redirect": True, "enable_ping": True, "headers": {"X-My-Header": "1"},
                 "reconnect": {"retry_max_delay": 5}, "proxy": "sip:p"}


def test_sip_error_shape():
    err = SipError(486, "Busy Here")
    assert (err.status, err.reason, err.res) == (486, "Busy Here", None)
    assert str(err) == "Sip non-success response: 486"


def test_package_exports():
    assert drachtio_srf.__version__ == "0.1.0"
    assert drachtio_srf.SipRequest is Request and drachtio_srf.SipResponse is Response
    assert drachtio_srf.parseUri is drachtio_srf.parse_uri
    assert drachtio_srf.parse_uri("sip:alice@10.0.0.1:5080").port == 5080
    assert Srf.SipError is SipError and Srf.Dialog is Dialog


# -- names.ALIASES (the one table) and the class bodies (what type checkers read) agree ---------------

def _declared_names(cls: type, skip: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Names assigned or annotated in the body of ``cls`` and of its drachtio_srf bases (``if``
    blocks such as ``if TYPE_CHECKING:`` included; bases named in ``skip`` left out): name -> the
    plain name it is set to, if any."""
    import ast
    import inspect
    import textwrap
    out: dict[str, str | None] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("drachtio_srf") or klass.__name__ in skip:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = list(tree.body[0].body)       # type: ignore[attr-defined]
        while body:
            node = body.pop(0)
            if isinstance(node, ast.If):
                body.extend(node.body + node.orelse)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        out[target.id] = node.value.id if isinstance(node.value, ast.Name) else None
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                out[node.target.id] = None
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out[node.name] = None
    return out


def _alias_classes():
    from drachtio_srf.names import ALIASES
    classes = {"Srf": Srf, "Dialog": Dialog, "Request": Request, "Response": Response, "SipInfo": SipInfo}
    assert set(classes) == set(ALIASES)
    return [(classes[name], table) for name, table in ALIASES.items()]


def test_every_js_name_of_the_table_is_declared_in_the_class_body():
    """Type checkers only see what the class bodies declare: each alias of names.ALIASES must be
    written there, bound to its PEP 8 name when it is a plain assignment."""
    for cls, table in _alias_classes():
        declared = _declared_names(cls)
        missing = sorted(js for js in table if js not in declared)
        assert not missing, f"{cls.__name__}: JS names not declared in the class body: {missing}"
        wrong = sorted(js for js, py in table.items() if declared[js] not in (None, py))
        assert not wrong, f"{cls.__name__}: declared as an alias of another name: {wrong}"


def test_every_js_alias_declared_in_a_class_body_is_in_the_table():
    from drachtio_srf.names import ALIASES
    for cls, table in _alias_classes():
        declared = _declared_names(cls, skip=("Emitter",))   # (the emitter's own JS names: not this table)
        aliases = {name: target for name, target in declared.items()
                   if target is not None and name != name.lower() and target == target.lower()
                   and name[0].islower()}
        extra = sorted(name for name in aliases if name not in table)
        assert not extra, f"{cls.__name__}: JS aliases missing from names.ALIASES: {extra}"
    assert ALIASES["Request"]["stackTime"] == "stack_time"


def test_verb_handlers_and_dialog_shortcuts_are_declared_in_the_class_bodies():
    from drachtio_srf.dialog import SIP_METHODS
    from drachtio_srf.srf import VERBS
    srf_body = _declared_names(Srf)
    assert all(verb in srf_body for verb in VERBS)
    dialog_body = _declared_names(Dialog)
    assert all(m.lower() in dialog_body for m in SIP_METHODS)
    assert Dialog.info.__name__ == "info" and Srf.invite.__name__ == "invite"
