"""drachtio_srf.usercode: JS arity for user callables, and coroutines run on an event loop."""
from __future__ import annotations

import asyncio
import functools
import threading

import pytest

from drachtio_srf import usercode
from drachtio_srf.usercode import ALL, LoopRunner, adapt, arity, call


class Obj:
    def method(self, a):
        return ("method", a)

    def __call__(self, a, b):
        return ("obj", a, b)

    @staticmethod
    def static(a):
        return ("static", a)


def two(a, b):
    return (a, b)


def test_arity_of_each_kind_of_callable():
    assert arity(lambda: 0) == 0
    assert arity(two) == 2
    assert arity(lambda a, b=1, *, c=2: 0) == 2
    assert arity(lambda *args: 0) == ALL
    assert arity(Obj().method) == 1            # bound: self is not counted
    assert arity(Obj()) == 2                   # callable object
    assert arity(Obj.static) == 1
    assert arity(functools.partial(two, 1)) == 1
    assert arity(print) == ALL                 # builtin: signature has *args
    assert arity(functools.wraps(two)(lambda *a, **k: two(*a, **k))) == 2   # follows __wrapped__


def test_call_passes_only_what_the_function_takes():
    assert call(lambda: "none", 1, 2, 3) == "none"
    assert call(two, 1, 2, 3) == (1, 2)
    assert call(lambda *a: a, 1, 2, 3) == (1, 2, 3)
    assert call(Obj().method, 1, 2) == ("method", 1)
    assert call(Obj(), 1, 2, 3) == ("obj", 1, 2)
    assert call(functools.partial(two, 0), 9, 8) == (0, 9)
    assert call(max, 1, 5, 3) == 5            # builtin gets every argument


def test_missing_arguments_are_none_as_js_passes_undefined():
    assert call(two, 1) == (1, None)
    assert call(two) == (None, None)
    assert call(lambda a, b=7: (a, b), 1) == (1, 7)          # a default is kept
    assert call(lambda a, b, c=3: (a, b, c)) == (None, None, 3)
    assert call(Obj().method) == ("method", None)            # bound: self is not padded
    assert call(Obj(), 1) == ("obj", 1, None)                # callable object
    assert call(functools.partial(two, 0)) == (0, None)
    assert adapt(lambda err, dialog: (err, dialog))("boom") == ("boom", None)   # a failure callback
    assert call(lambda err, hostport, *rest: (err, hostport, rest), "e") == ("e", None, ())
    assert call(lambda *rest: rest) == ()


def test_keyword_only_parameters_are_not_padded():
    with pytest.raises(TypeError):
        call(lambda a, *, b: (a, b), 1)


def test_arity_is_cached_per_code_object():
    made = [(lambda a, b: a) for _ in range(3)]
    arity(made[0])
    code = made[0].__code__
    assert usercode._by_code[code] == 2
    before = len(usercode._by_code)
    for fn in made:
        arity(fn)
    assert len(usercode._by_code) == before       # one entry for the three lambdas


def test_adapt_rejects_a_non_callable_with_a_clear_message():
    with pytest.raises(TypeError, match="expected a function, got str"):
        adapt("sip:foo@bar")
    assert adapt(None) is None
    a = adapt(two)
    assert adapt(a) is a and a(1, 2, 3) == (1, 2)


def test_coroutine_runs_on_the_library_loop_and_the_caller_waits():
    runner = LoopRunner()
    seen = {}

    async def handler(x):
        await asyncio.sleep(0)
        seen["thread"] = threading.current_thread().name
        return x * 2

    class Owner:
        _loop_runner = runner

    try:
        assert call(handler, 21, "extra", owner=Owner()) == 42
        assert seen["thread"] == "drachtio-asyncio"
    finally:
        runner.close()


def test_coroutine_exception_reaches_the_caller():
    runner = LoopRunner()

    async def boom():
        raise ValueError("bad")

    class Owner:
        _loop_runner = runner

    try:
        with pytest.raises(ValueError, match="bad"):
            call(boom, owner=Owner())
    finally:
        runner.close()


def test_coroutine_runs_on_the_app_loop():
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, name="app-loop", daemon=True)
    t.start()
    runner = LoopRunner(loop)

    async def where():
        return threading.current_thread().name

    class Owner:
        _loop_runner = runner

    try:
        assert call(where, owner=Owner()) == "app-loop"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        call(where, owner=Owner())


def test_library_loop_stops_on_close_and_restarts_on_demand():
    runner = LoopRunner()

    async def name():
        return threading.current_thread().name

    class Owner:
        _loop_runner = runner

    call(name, owner=Owner())
    thread = runner._thread
    assert thread is not None and thread.is_alive()
    runner.close()
    assert not thread.is_alive()
    assert call(name, owner=Owner()) == "drachtio-asyncio"
    runner.close()


def test_app_loop_must_be_a_loop():
    with pytest.raises(TypeError, match="asyncio event loop"):
        LoopRunner().app_loop = "loop"   # type: ignore[assignment]


def test_coroutines_started_from_a_coroutine_are_waited_for_too():
    """An async middleware calling ``next()`` into an async handler: the library call that ran
    the outer coroutine returns only when the inner one (started on the loop) has finished."""
    runner = LoopRunner()
    done = []

    class Owner:
        _loop_runner = runner

    async def inner():
        await asyncio.sleep(0.02)
        done.append("inner")

    async def outer():
        call(inner, owner=Owner())       # on the loop thread: becomes a task
        done.append("outer")

    try:
        call(outer, owner=Owner())
        assert done == ["outer", "inner"]
    finally:
        runner.close()


def test_library_futures_are_awaitable_gatherable_and_cancellable():
    from drachtio_srf.dispatch import DrachtioFuture

    async def main():
        a, b, c, d = DrachtioFuture(), DrachtioFuture(), DrachtioFuture(), DrachtioFuture()
        threading.Timer(0.03, a.set_result, ("A",)).start()     # resolved from other threads
        threading.Timer(0.01, b.set_result, ("B",)).start()
        assert await asyncio.gather(a, b) == ["A", "B"]          # Promise.all
        threading.Timer(0.01, c.set_exception, (ValueError("failed"),)).start()
        with pytest.raises(ValueError, match="failed"):
            await c
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(d, 0.02)
        return d.cancelled()                 # cancelling the await cancels the Future

    assert asyncio.run(main()) is True
