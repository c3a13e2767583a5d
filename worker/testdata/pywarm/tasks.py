"""A warm Python SDK runtime for the worker's warm-mode tests: the same
tasks as ../warmruntime (Go), as async def and plain def tasks."""

import asyncio
import os
import time

import taskwire

app = taskwire.App()


@app.task("noop")
def noop(ctx):
    ctx.log.info("noop", extra={"pid": os.getpid()})


@app.task("block")
async def block(ctx):
    """Runs until it is cancelled (async def: CancelledError at its await)."""
    ctx.log.info("started pid=%d" % os.getpid())
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        ctx.log.info("cancelled")
        raise


@app.task("blocksync")
def blocksync(ctx):
    """Runs until it is cancelled (plain def: polls ctx.cancelled)."""
    ctx.log.info("started pid=%d" % os.getpid())
    while not ctx.cancelled:
        time.sleep(0.01)
    ctx.log.info("cancelled")
    raise RuntimeError("cancelled")


@app.task("stubborn")
def stubborn(ctx):
    """Ignores its cancellation."""
    ctx.log.info("started pid=%d" % os.getpid())
    time.sleep(3600)


@app.task("api")
async def api(ctx):
    """Reads the variable named after its task instance and masks it."""
    v = await ctx.avariable(ctx.ti.id)
    await ctx.amask_secret(v)
    ctx.log.info("the value is " + v)


@app.task("apisync")
def apisync(ctx):
    v = ctx.variable(ctx.ti.id)
    ctx.mask_secret(v)
    ctx.log.info("the value is " + v)


@app.task("many")
async def many(ctx):
    """Many requests of one try in flight at once on its connection: from
    the event loop and from pool threads (Context's awaitable methods)."""
    got = await asyncio.gather(*(ctx.avariable(ctx.ti.id) for _ in range(8)))
    if len(set(got)) != 1:
        raise RuntimeError("answers differ: %r" % (got,))
    ctx.log.info("many %d" % len(got))


@app.task("defer")
async def defer(ctx):
    await ctx.adefer("taskwire.triggers.TimeDelta", {"delta": "1s"}, "resume", {"n": "1"}, timeout=60)


@app.method("defer", "resume")
async def resume(ctx):
    ctx.log.info("resumed with %s" % ctx.next_kwargs["n"])


@app.task("sleep")
async def sleep(ctx):
    await asyncio.sleep(float(ctx.params.get("seconds", 5)))


if __name__ == "__main__":
    app.main()
