"""`orchestrator run` without input files: the long-running service, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import typer

from orchestrator.cli.common import console, opened_app, run, valid_settings


def serve_forever(ctx: typer.Context) -> None:
    # The service's intake (Kafka, Slack, PagerDuty clients) is imported only to serve: the
    # other commands start in about half the time without it.
    from opentelemetry import metrics, trace  # noqa: PLC0415

    from orchestrator.logs import configure_logging  # noqa: PLC0415
    from orchestrator.service import run_service  # noqa: PLC0415
    from orchestrator.telemetry import service_telemetry  # noqa: PLC0415

    settings = valid_settings(ctx, with_kafka_topics=True)
    configure_logging(json=settings.log_format == "json", secrets=settings.secret_values())
    # Installed before anything is built: every component records through the global meter.
    telemetry = service_telemetry(settings.otlp_metrics_url, traces_url=settings.otlp_traces_url)
    metrics.set_meter_provider(telemetry.provider)
    if telemetry.tracing is not None:
        trace.set_tracer_provider(telemetry.tracing)

    async def go() -> None:
        async with opened_app(ctx, out=_print_line) as app:
            settings = app.settings

            def ready() -> None:
                console.rule("[bold]incident orchestrator: serving")
                console.print(f"store:     {settings.safe_database_url()}", highlight=False)
                console.print(
                    f"playbooks: {len(app.playbooks)} from {settings.playbooks_dir}",
                    highlight=False,
                )
                if settings.kafka_bootstrap:
                    topics = ", ".join(settings.kafka_topic_formats())
                    console.print(
                        f"kafka:     {settings.kafka_bootstrap} topics {topics} "
                        f"group {settings.kafka_group}",
                        highlight=False,
                    )
                else:
                    console.print("kafka:     not configured (ORCH_KAFKA_BOOTSTRAP)")
                if settings.http_port:
                    auth = "bearer token" if settings.http_token else "no auth"
                    console.print(
                        f"http:      http://{settings.http_host}:{settings.http_port}"
                        f"/api/v1/alerts ({auth}); /healthz, /readyz, /metrics",
                        highlight=False,
                    )
                mode = "[bold yellow]DRY-RUN[/]" if settings.dry_run else "live"
                console.print(f"actions:   {mode}.  Stop with Ctrl-C or SIGTERM.")

            await run_service(app, on_ready=ready, telemetry=telemetry)
        console.print("stopped cleanly")

    try:
        run(go())
    finally:
        telemetry.shutdown()  # the last OTLP push


def _print_line(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)
