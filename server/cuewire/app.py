"""``create_app(settings)``: the Starlette app with Socket.IO mounted, and its lifespan."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, request_response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from . import __version__
from .admin.auth import AdminAuth
from .admin.deadletters import deadletter_routes
from .admin.funnels import funnel_routes
from .admin.qa import mount_qa
from .admin.studio import studio_routes
from .backend import BackendEvents
from .clock import Clock, SystemClock
from .delivery import Delivery, Emit
from .demo_mail import MailSink
from .engine_socket import SocketServer
from .export.history import ExportHistory
from .export.loader import Loader, postgres_loader
from .gateway import Gateway
from .inbox import Inbox, InboxClient
from .keys import Keys
from .learn.models import ModelFiles
from .mail.mailer import Mailer
from .mail.queue import CHANNEL as EMAIL
from .mail.queue import MailQueue
from .mail.smtp import SmtpTarget
from .mail.unsubscribe import unsubscribe_routes
from .metrics import Metrics
from .outbox import Outbox
from .pipeline import Pipeline
from .protocol import Push
from .rooms import LocalManager
from .runtime import Runtime
from .segment_api import SegmentApi
from .settings import Settings
from .sites import Sites
from .snippet import Snippet
from .sockets import LocalSockets, new_process_id
from .store import RedisStore, open_store
from .supervise import Supervisor
from .timers import TimerLoop
from .transport import socketio_options
from .webhooks import CHANNEL as WEBHOOKS
from .webhooks import Webhooks
from .webhooks import new_client as new_webhook_client

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything long-lived one app owns; the lifespan starts and stops it."""

    settings: Settings
    store: RedisStore
    runtime: Runtime
    sio: socketio.AsyncServer
    gateway: Gateway
    delivery: Delivery
    timers: TimerLoop
    webhooks: Webhooks
    metrics: Metrics
    pipeline: Pipeline
    clock: Clock
    supervisor: Supervisor
    sockets: LocalSockets  # this process's sockets, and its id
    inbox: Inbox | None  # with Redis: targeted delivery to the other processes
    mailer: Mailer  # the rule action `email` (mail/): its sends go on the "email" outbox
    mail_sink: MailSink | None  # `cuewire demo`: the local SMTP sink emails go to
    export: Callable[[], Loader] | None = None  # with CUEWIRE_EXPORT_DSN (docs/export.md)
    history: ExportHistory | None = None  # with it too: the QA search reads the export
    # the durable outboxes by channel (outbox.py), made once the store is open: ``outbox_for``
    outboxes: dict[str, Outbox] = field(default_factory=dict)

    async def push_to_tab(self, address: str, push: Push, confirm: bool) -> bool:
        """Push to the socket at ``address``, on this process or through its holder's inbox
        (a reset, say: admin/qatools.py)."""
        emitter = self.inbox if self.inbox is not None else self.sockets
        return await emitter.emit(address, push, confirm)


def build_services(settings: Settings, sites: Sites, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    store = open_store(settings)
    runtime = Runtime(settings.rules_dir, settings.templates_dir, ModelFiles.of(settings))
    # no client manager on Redis: a prompt for another process's socket goes to that
    # process's inbox (inbox.py), not to every process
    sio = SocketServer(
        async_mode="asgi",
        serializer="msgpack",
        client_manager=LocalManager(),
        cors_allowed_origins="*",  # each site key has its own allow-list, checked on connect
        cors_credentials=False,  # never let another origin's page send its cookies or auth
        max_http_buffer_size=settings.limits.max_payload_bytes,
        transports=["websocket", "polling"],
        **socketio_options(),
    )

    supervisor = Supervisor()
    webhooks = Webhooks(
        new_webhook_client(), lambda key: getattr(sites.get(key), "webhook_secret", None)
    )
    metrics = Metrics()
    local = LocalSockets(sio, new_process_id())
    inbox = None
    emit: Emit = local.emit  # the embedded store: one process, every socket is local
    if settings.redis_url:
        inbox = Inbox(
            InboxClient(settings.redis_url, lambda: store.keys.cluster),
            Keys(settings.key_prefix),
            local,
            metrics,
            lambda job: supervisor.run_once("inbox-deliveries", job),
        )
        emit = inbox.emit
    mailer = Mailer(runtime.emails, settings, clock, store.audit)
    delivery = Delivery(
        store,
        runtime.engine,
        runtime.catalog,
        emit,
        clock,
        metrics,
        mailer,
    )
    pipeline = Pipeline(store, runtime.engine, delivery)
    gateway = Gateway(sio, settings, sites, store, pipeline, clock, metrics, local.address)
    timers = TimerLoop(
        store,
        runtime.engine,
        delivery,
        clock,
        settings.timer_poll_s,
        settings.session_ttl_s,
        on_lateness=lambda ms: metrics.timer_lateness.observe(ms / 1000),
        on_store_error=metrics.store_errors.labels("timers").inc,
    )
    export = None
    if settings.export_dsn:  # made once the store is open (a cluster client replaces its own)
        consumer = f"serve-{local.process}"
        registry = metrics.registry
        export = lambda: postgres_loader(  # noqa: E731
            settings, store.client, store.keys, sites.keys(), consumer, registry
        )
    return Services(
        settings,
        store,
        runtime,
        sio,
        gateway,
        delivery,
        timers,
        webhooks,
        metrics,
        pipeline,
        clock,
        supervisor,
        local,
        inbox,
        mailer,
        MailSink() if settings.demo_mail_sink else None,
        export,
        ExportHistory(settings.export_dsn) if settings.export_dsn else None,
    )


def mail_queue(outbox: Outbox, store: RedisStore, settings: Settings) -> MailQueue:
    """The mailer's queue on the ``email`` outbox of an open store."""
    outbox.base_s = settings.mail_retry_s  # the first retry's pause (then doubling, jittered)
    return MailQueue(outbox, store.client, store.keys)


def outbox_for(services: Services, channel: str) -> Outbox:
    """The durable outbox of ``channel`` (one per channel and process; call it once the store
    is open: on a cluster the store's client is the cluster's only then). Its loop is the
    caller's to run under the supervisor (as ``serving`` does for webhooks)."""
    if channel not in services.outboxes:
        settings = services.settings
        services.outboxes[channel] = Outbox(
            services.store.client,
            services.store.keys,
            channel,
            consumer=services.sockets.process,
            metrics=services.metrics,
            lease_s=settings.outbox_lease_s,
            poll_s=settings.outbox_poll_s,
            base_s=settings.outbox_backoff_s,
        )
    return services.outboxes[channel]


@contextlib.asynccontextmanager
async def serving(services: Services) -> AsyncIterator[Services]:
    """Open everything long-lived in order and close it in reverse, whatever happens.

    Closing order: the reload watcher and the timer loop stop first (a tick in flight
    finishes, within the supervisor's grace period), then Socket.IO, then the export when it
    runs (its batch in flight committed and acknowledged), then the inbox's reader
    and the inbox (deleted: other processes stop sending to it), then webhooks (deliveries in
    flight get a moment) and their HTTP client, the supervisor (QA feeds and what is left),
    finishes, within the supervisor's grace period), then Socket.IO, then the inbox's reader
    and the inbox (deleted: other processes stop sending to it), then the webhooks' outbox
    loop (deliveries in flight get the grace period; a job not settled stays in the outbox
    for the next process) and its HTTP client, the supervisor (QA feeds and what is left),
    and the store last."""
    settings = services.settings
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(services.store)
        if not await services.store.ping():
            log.error(
                "the store at %s is not reachable; retrying in the background", settings.redis_url
            )
        supervisor = await stack.enter_async_context(services.supervisor)
        await stack.enter_async_context(services.webhooks.client)
        hooks = outbox_for(services, WEBHOOKS)
        await stack.enter_async_context(
            supervisor.running(
                f"outbox:{hooks.channel}",
                lambda: hooks.run(services.webhooks.handle),
                stop=hooks.stop,
            )
        )
        inbox = services.inbox
        if inbox is not None:
            await stack.enter_async_context(inbox)
            await stack.enter_async_context(supervisor.running("inbox", inbox.run))
        if services.history is not None:
            stack.push_async_callback(services.history.aclose)
        if services.export is not None:
            loader = services.export()
            await stack.enter_async_context(
                supervisor.running("export", loader.run, stop=loader.stop)
            )
        stack.push_async_callback(services.sio.shutdown)
        await _start_mail(stack, services, supervisor)
        await stack.enter_async_context(
            supervisor.running("timers", services.timers.run, stop=services.timers.stop)
        )
        await _share_address_limit(stack, services, supervisor)
        await stack.enter_async_context(
            supervisor.running("reload", lambda: services.runtime.watch(settings.reload_poll_s))
        )
        yield services


async def _share_address_limit(
    stack: contextlib.AsyncExitStack, services: Services, supervisor: Supervisor
) -> None:
    """On a Redis Cluster with the per-address rate limit on: decide it in this process and
    share its counts every ``address_sync_s`` (store/addresses.py); with 0, every batch asks
    the address's shared key first (exact, one more round trip)."""
    limit = services.store.address_limit
    settings = services.settings
    if limit is None or settings.limits.address_events_per_second <= 0:
        return
    if settings.address_sync_s <= 0:
        return
    every_s = settings.address_sync_s
    running = supervisor.running("address-limit", lambda: limit.run(every_s), stop=limit.stop)
    await stack.enter_async_context(running)


async def _start_mail(
    stack: contextlib.AsyncExitStack, services: Services, supervisor: Supervisor
) -> None:
    """The demo's SMTP sink (the mailer sends there), then the mailer's send loop."""
    if services.mail_sink is not None:
        sink = await stack.enter_async_context(services.mail_sink)
        services.mailer.target = SmtpTarget(sink.host, sink.port)
    mailer = services.mailer
    outbox = outbox_for(services, EMAIL)
    mailer.use(mail_queue(outbox, services.store, services.settings))
    running = supervisor.running(f"outbox:{outbox.channel}", mailer.run, stop=mailer.stop)
    await stack.enter_async_context(running)


def create_app(settings: Settings, sites: Sites, clock: Clock | None = None) -> ASGIApp:
    """The whole server as one ASGI app. Raises SourceError for invalid rules or templates."""
    services = build_services(settings, sites, clock)
    snippet = Snippet.from_package()
    backend = BackendEvents(settings, sites, services.store, services.pipeline, services.clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with serving(services):
            yield {"services": services}

    async def healthz(request: Request) -> JSONResponse:
        store_ok = await services.store.ping()
        runtime = services.runtime
        tasks = services.supervisor.states()
        address_limit = services.store.address_limit
        shared = address_limit.status() if address_limit is not None else {"shared": False}
        body = {
            "ok": store_ok
            and runtime.last_error is None
            and all(t.running for t in tasks)
            and not shared.get("failing", False),
            "version": __version__,
            "process": services.sockets.process,
            "store": {
                "reachable": store_ok,
                "backend": "redis" if settings.redis_url else "embedded",
            },
            "rules": {"loaded": len(runtime.engine().rules), "error": runtime.last_error},
            "templates": {"loaded": len(runtime.catalog())},
            "connections": services.gateway.connections,
            "worker": {"pid": os.getpid(), "index": settings.worker},
            "tasks": {t.name: t.as_json() for t in tasks},
            "address_limit": shared,
        }
        return JSONResponse(body, status_code=200 if store_ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def admin(endpoint: ASGIApp) -> ASGIApp:
        return AdminAuth(endpoint, settings.admin_user, settings.admin_password)

    routes: list[Route | Mount] = [
        Route("/cw.js", snippet.endpoint),
        Route("/healthz", healthz),
        Route("/metrics", admin(request_response(metrics_endpoint))),
        *mount_qa(services, sites, admin),
        *funnel_routes(services.store, services.runtime, services.clock, sites.keys(), admin),
        *deadletter_routes(services.outboxes, admin),
        *studio_routes(services.runtime, admin),
        Route("/v1/events", backend.endpoint, methods=["POST"]),
        *unsubscribe_routes(services.mailer),
        *SegmentApi(settings, sites, services.store, services.pipeline, services.clock).routes(),
    ]
    if services.mail_sink is not None:
        routes.append(Route("/qa/mail", admin(request_response(services.mail_sink.page))))
    if settings.demo_site_dir is not None:
        routes.append(Mount("/", StaticFiles(directory=settings.demo_site_dir, html=True)))
    web = Starlette(routes=routes, lifespan=lifespan)
    web.state.services = services
    asgi: ASGIApp = socketio.ASGIApp(services.sio, other_asgi_app=web, socketio_path="socket.io")
    return asgi


def services_of(app: ASGIApp) -> Services:
    """The services behind an app made by :func:`create_app` (for tests and tools)."""
    services: Services = app.other_asgi_app.state.services  # type: ignore[attr-defined]
    return services
