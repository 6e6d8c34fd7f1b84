"""Calling the application's code: one place that adapts any user callable.

Every listener, callback, verb handler, middleware and option function the library calls goes
through :func:`call` (or :class:`Adapted`, or the Emitter's inlined copy of its rules), which
gives JavaScript's calling convention and asyncio:

* **Arity.** A function that declares fewer positional parameters than it is given gets only the
  first ones, as JS ignores extra arguments (``dlg.on('destroy', lambda: ...)``).  ``*args``
  takes everything; bound methods, ``functools.partial`` and callable objects are read through
  :func:`inspect.signature` once; a builtin whose signature cannot be read gets every argument.
  One given fewer arguments than it has parameters without defaults gets None for the missing
  ones, as JS passes ``undefined`` (``lambda err, dialog: ...`` called with only an error).
  The count is cached (per code object for plain functions and methods, so a lambda made per
  call costs nothing new), so adapting costs one dict lookup per call.
* **Coroutines.** When the call returns a coroutine (an ``async def`` function), it is run on an
  event loop (:class:`LoopRunner`: the app's, ``Srf(loop=...)``, else one the library owns) and
  the calling worker waits for it to finish, so the per-dialog ordering is the same as for a
  plain function.  Called on that loop's own thread (where waiting is impossible), the coroutine
  is scheduled as a task instead.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import threading
import types
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from . import threadpolicy

logger = logging.getLogger(__name__)

__all__ = ["ALL", "Adapted", "LoopRunner", "adapt", "arity", "bind_runner", "call", "describe",
           "pad", "required", "runner_for"]

ALL = 1 << 30     #: arity of a callable that takes any number of positional arguments
"""Arity given to a callable that takes any number of positional arguments."""

_FUNC = types.FunctionType
_METHOD = types.MethodType
_CO_VARARGS = inspect.CO_VARARGS
_by_code: dict[types.CodeType, int] = {}      # plain functions (and methods' functions)
_by_obj: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()    # other callables
_required_by_code: dict[types.CodeType, int] = {}
_cache_lock = threading.Lock()


def _code_arity(code: types.CodeType) -> int:
    if code.co_flags & _CO_VARARGS:
        return ALL
    return code.co_argcount


def _signature_arity(fn: Any) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):      # a builtin without a readable signature: pass everything
        return ALL
    n = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return ALL
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            n += 1
    return n


def arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` accepts (:data:`ALL` with ``*args``); cached."""
    tp = type(fn)
    if tp is _FUNC and "__wrapped__" not in fn.__dict__:
        code = fn.__code__    
        n = _by_code.get(code)
        if n is None:
            n = _by_code[code] = _code_arity(code)
        return n
    if tp is _METHOD:
        func = fn.__func__       # type: ignore[attr-defined]
        if type(func) is _FUNC and "__wrapped__" not in func.__dict__:
            code = func.__code__
            n = _by_code.get(code)
            if n is None:
                n = _by_code[code] = _code_arity(code)
            return n - 1 if n != ALL else ALL
    try:
        n = _by_obj.get(fn)
    except TypeError:            # unhashable callable object
        return _signature_arity(fn)
    if n is None:
        n = _signature_arity(fn)
        try:
            with _cache_lock:
                _by_obj[fn] = n
        except TypeError:        # not weak-referenceable (e.g. some builtins): compute each time
            pass
    return n


def _code_required(fn: Any) -> int:
    code = fn.__code__
    n = _required_by_code.get(code)
    if n is None:       # how many defaults a def has is fixed by its source, so per code is right
        n = _required_by_code[code] = code.co_argcount - len(fn.__defaults__ or ())
    return n


def required(fn: Callable[..., Any]) -> int:
    """How many positional parameters of ``fn`` have no default (cached per code object for
    functions and methods; only read when ``fn`` is given fewer arguments than it may take)."""
    tp = type(fn)
    if tp is _FUNC and "__wrapped__" not in fn.__dict__:
        return _code_required(fn)
    if tp is _METHOD:
        func = fn.__func__       # type: ignore[attr-defined]
        if type(func) is _FUNC and "__wrapped__" not in func.__dict__:
            return _code_required(func) - 1
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params
               if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def pad(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` extended with None up to the parameters of ``fn`` that have no default, as JS
    passes ``undefined`` for missing arguments (``lambda err, dialog: ...`` on a failure)."""
    missing = required(fn) - len(args)
    return args + (None,) * missing if missing > 0 else args


def call(fn: Callable[..., Any], *args: Any, owner: Any = None) -> Any:
    """Call user code ``fn`` with as many of ``args`` as it takes; run a coroutine it returns.

    ``owner`` (an Srf, Dialog, Request, Response, or a Dispatcher bound with
    :func:`bind_runner`) chooses the event loop a coroutine runs on.  Returns what ``fn``
    returned, or the coroutine's result; exceptions propagate to the caller.
    """
    n = arity(fn)
    nargs = len(args)
    if n < nargs:
        result = fn(*args[:n])
    elif n == nargs:
        result = fn(*args)
    else:       # may take more (``*args`` or defaults): pad only what has no default
        result = fn(*pad(fn, args))
    if result is not None and type(result) is types.CoroutineType:
        return runner_for(owner).run(result)
    return result


def describe(fn: Any) -> str:
    """A short name for ``fn`` in log lines (``module.qualname``)."""
    target = getattr(fn, "func", fn)       # functools.partial
    name = getattr(target, "__qualname__", None) or type(target).__name__
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else str(name)


# -- event loops ----------------------------------------------------------------------------------

class LoopRunner:
    """Runs user coroutines on one event loop: the app's (given or set later), else its own.

    The library's own loop lives on a daemon thread named ``drachtio-asyncio``, started on the
    first coroutine and stopped by :meth:`close` (``srf.disconnect()``); a later coroutine starts
    a new one.  An app loop is never started or stopped here: the app runs it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._app_loop = loop
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def app_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the application gave (None: the library's own is used)."""
        return self._app_loop

    @app_loop.setter
    def app_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
            raise TypeError(f"loop must be an asyncio event loop or None, got {type(loop).__name__}")
        self._app_loop = loop

    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop coroutines run on (starting the library's own when no app loop is set)."""
        app = self._app_loop
        if app is not None:
            if app.is_closed():
                raise RuntimeError("the event loop given to Srf is closed")
            return app
        with self._lock:
            own = self._own_loop
            if own is None:
                own = self._own_loop = asyncio.new_event_loop()
                ready = threading.Event()
                t = threading.Thread(target=self._run_own, args=(own, ready), name="drachtio-asyncio",
                                     daemon=True)
                self._thread = t
                t.start()
                ready.wait(5.0)
            return own

    @staticmethod
    def _run_own(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        threadpolicy.apply()
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the loop and return its result (raising its exception).

        On the loop's own thread (user code that the library calls from a coroutine, e.g. the
        next layer of middleware through ``next()``) it cannot be waited for: it becomes a task
        (its failure is logged) and None is returned; the worker that waits for the outer
        coroutine then waits for that task too, so the event is done only when both are.
        """
        try:
            loop = self.loop()
        except BaseException:
            coro.close()
            raise
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(coro)
            task.add_done_callback(_log_task_failure)
            started = _started.get()
            if started is not None:
                started.append(task)
            return None
        return asyncio.run_coroutine_threadsafe(_outermost(coro), loop).result()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the library's own loop and join its thread (no effect on an app loop)."""
        with self._lock:
            own, t = self._own_loop, self._thread
            self._own_loop = self._thread = None
        if own is None or t is None:
            return
        own.call_soon_threadsafe(own.stop)
        if t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                logger.warning("drachtio-asyncio loop did not stop within %.1fs", timeout)


#: in a coroutine the library waits for: the tasks user code started through the library meanwhile
_started: contextvars.ContextVar[list[asyncio.Task[Any]] | None] = contextvars.ContextVar(
    "drachtio_started", default=None)


async def _outermost(coro: Coroutine[Any, Any, Any]) -> Any:
    """``coro``, then every task started for it (and by them) through :meth:`LoopRunner.run`."""
    started: list[asyncio.Task[Any]] = []
    _started.set(started)       # (this task's own context; its child tasks copy it)
    result = await coro
    while started:
        task = started.pop(0)
        with contextlib.suppress(BaseException):    # (already logged by _log_task_failure)
            await task
    return result


def _log_task_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        logger.error("user coroutine %r raised", task.get_coro(), exc_info=exc)


_bound: weakref.WeakKeyDictionary[Any, LoopRunner] = weakref.WeakKeyDictionary()
_default_runner: LoopRunner | None = None


def bind_runner(obj: Any, runner: LoopRunner) -> None:
    """Make ``runner`` the loop of coroutines called with ``owner=obj`` (e.g. a Dispatcher)."""
    _bound[obj] = runner


def runner_for(owner: Any) -> LoopRunner:
    """The LoopRunner for user code called on behalf of ``owner``.

    ``owner`` may carry one (``_loop_runner``, as Srf does, or reach it through ``srf`` or
    ``agent.srf``) or have been bound with :func:`bind_runner`; else a process-wide default.
    """
    global _default_runner
    if owner is not None:
        r = getattr(owner, "_loop_runner", None)
        if isinstance(r, LoopRunner):
            return r
        for attr in ("srf", "agent"):
            sub = getattr(owner, attr, None)
            if sub is not None and sub is not owner:
                r = getattr(sub, "_loop_runner", None) or getattr(getattr(sub, "srf", None), "_loop_runner", None)
                if isinstance(r, LoopRunner):
                    return r
        try:
            r = _bound.get(owner)
        except TypeError:
            r = None
        if r is not None:
            return r
    with _cache_lock:
        if _default_runner is None:
            _default_runner = LoopRunner()
        return _default_runner


class Adapted:
    """``fn`` called by :func:`call` rules (arity, coroutines on ``owner``'s loop): what the
    library stores when it keeps a user callable to call later (callbacks, ``fn_ack``)."""

    __slots__ = ("fn", "owner")

    def __init__(self, fn: Callable[..., Any], owner: Any = None) -> None:
        self.fn = fn
        """The user's callable."""
        self.owner = owner
        """The object whose loop runs ``fn`` when it is a coroutine function (or None)."""

    def __call__(self, *args: Any) -> Any:
        return call(self.fn, *args, owner=self.owner)

    def __repr__(self) -> str:
        return f"<user code {describe(self.fn)}>"


def adapt(fn: Any, owner: Any = None) -> Any:
    """``fn`` wrapped as :class:`Adapted` (None and already adapted callables as they are).

    Raises TypeError when ``fn`` is neither None nor callable.
    """
    if fn is None or type(fn) is Adapted:
        return fn
    if not callable(fn):
        raise TypeError(f"expected a function, got {type(fn).__name__}: {fn!r:.60}")
    return Adapted(fn, owner)
