"""One run: configuration and final metrics, metric curves, losses, sample recommendations."""

from __future__ import annotations

import json

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Static, TabbedContent, TabPane, Tabs

from diffrec_cli.render.charts import Series
from diffrec_cli.render.metrics import metrics_table
from diffrec_cli.render.numbers import format_seconds
from diffrec_cli.training.evaluate import METRICS
from diffrec_cli.tui.messages import DetailLoaded, RecommendationsReady
from diffrec_cli.tui.records import RunDetail, read_detail
from diffrec_cli.tui.widgets import CurveChart, LossSparkline, StepLossBars

TABS = ("overview", "curves", "losses", "recommend")


def overview(detail: RunDetail) -> Group:
    s = detail.summary
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    for label, value in (("run", s.id), ("status", s.status), ("model", s.model), ("dataset", s.dataset),
                         ("best epoch", s.best_epoch), ("epochs run", (detail.final or {}).get("epochs_run")),
                         ("wall time", format_seconds(s.seconds)),
                         ("parameters", f"{s.parameters:,}" if s.parameters is not None else None),
                         ("checkpoint", str(detail.checkpoint) if detail.checkpoint else "none")):
        facts.add_row(label, "–" if value is None else str(value))
    parts: list = [facts]
    for problem in detail.problems:
        parts.append(Text(f"problem: {problem}", style="bold red"))
    best = detail.record.best()
    parts += [Text(""), metrics_table(best.valid, best.test, detail.ks, title="metrics at the best epoch"),
              Text(""), Text("configuration", style="bold"), Text(json.dumps(detail.config, indent=2, default=str))]
    return Group(*parts)


class RunDetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("1", "tab('overview')", "Info"),
        Binding("2", "tab('curves')", "Curves"),
        Binding("3", "tab('losses')", "Losses"),
        Binding("4", "tab('recommend')", "Recs"),
        Binding("m", "next_metric", "Metric"),
        Binding("k", "next_k", "K"),
        Binding("r", "reload", "Refresh", show=False),
    ]

    DEFAULT_CSS = """
    RunDetailScreen #detail-title { height: 1; padding: 0 1; background: $boost; }
    RunDetailScreen #tabs { height: 1fr; }
    RunDetailScreen ContentSwitcher { height: 1fr; }
    RunDetailScreen TabPane { padding: 0 1; height: 1fr; }
    RunDetailScreen #recs { height: 1fr; }
    RunDetailScreen #curve { height: 1fr; min-height: 6; }
    RunDetailScreen #step-bars { height: 1fr; min-height: 3; }
    RunDetailScreen #user { width: 30; }
    RunDetailScreen .caption { color: $text-muted; }
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail: RunDetail | None = None
        self.metric, self.k = "recall", 20
        self._served = None  # the loaded model, kept for further recommendations

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self.run_id, id="detail-title")
        with TabbedContent(id="tabs"):
            with TabPane("Overview", id="overview"):
                with VerticalScroll():
                    yield Static(id="overview-body")
            with TabPane("Curves", id="curves"):
                yield Label(id="curve-title", classes="caption")
                yield CurveChart(id="curve")
            with TabPane("Losses", id="losses"):
                yield Label("loss per optimizer step", classes="caption")
                yield LossSparkline(id="loss-spark")
                yield Label("mean loss per diffusion step t (importance-sampling history)", classes="caption")
                yield StepLossBars(id="step-bars")
            with TabPane("Recommend", id="recommend"):
                yield Input(placeholder="user id, then enter", id="user")
                yield Static(id="rec-status", classes="caption")
                yield DataTable(id="recs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#recs", DataTable)
        table.add_columns("rank", "item", "score")
        self.action_reload()
        self.set_interval(self.app.refresh_seconds, self._reload_if_running)

    # ----- loading --------------------------------------------------------------------------------
    def action_reload(self) -> None:
        self._load()

    def _reload_if_running(self) -> None:
        if self.detail is not None and self.detail.summary.status == "running":
            self._load()

    @work(thread=True, exclusive=True, group="read-detail")
    def _load(self) -> None:
        self.post_message(DetailLoaded(read_detail(self.app.home.runs_dir / self.run_id, self.app.now)))

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        self.detail = detail = message.detail
        s = detail.summary
        self.query_one("#detail-title", Static).update(
            Text.assemble((s.id, "bold"), f"  {s.model} on {s.dataset}  ", (s.status, "bold")))
        self.query_one("#overview-body", Static).update(overview(detail))
        if self.k not in detail.ks:
            self.k = detail.ks[min(1, len(detail.ks) - 1)]
        self.draw_curves()
        self.query_one("#loss-spark", LossSparkline).set_values(detail.optimizer_losses)
        self.query_one("#step-bars", StepLossBars).set_values(detail.step_losses)

    def draw_curves(self) -> None:
        if self.detail is None:
            return
        name = f"{self.metric}@{self.k}"
        self.query_one("#curve-title", Label).update(
            f"{name} over epochs, {len(self.detail.evaluations)} evaluations   (m: metric, k: K)")
        self.query_one("#curve", CurveChart).set_series([
            Series(f"valid {name}", self.detail.curve("valid", name), "cyan"),
            Series(f"test {name}", self.detail.curve("test", name), "magenta"),
        ])

    # ----- actions --------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        tabbed = self.query_one("#tabs", TabbedContent)
        tabbed.query_one(Tabs).focus()  # focus left in a hidden pane would pull that pane back
        tabbed.active = tab
        if tab == "recommend":
            self.query_one("#user", Input).focus()

    def action_back(self) -> None:
        """Escape leaves the user-id field first, then the screen."""
        if isinstance(self.focused, Input):
            self.query_one("#recs", DataTable).focus()
        else:
            self.app.pop_screen()

    def action_next_metric(self) -> None:
        self.metric = METRICS[(METRICS.index(self.metric) + 1) % len(METRICS)]
        self.draw_curves()

    def action_next_k(self) -> None:
        ks = self.detail.ks if self.detail else [self.k]
        self.k = ks[(ks.index(self.k) + 1) % len(ks)] if self.k in ks else ks[0]
        self.draw_curves()

    @on(Input.Submitted, "#user")
    def _recommend(self, event: Input.Submitted) -> None:
        user = event.value.strip()
        if user:
            self.query_one("#rec-status", Static).update(f"recommending for user {user}…")
            self.recommend(user)

    @work(thread=True, exclusive=True, group="recommend")
    def recommend(self, user: str) -> None:
        from diffrec_cli.errors import DiffrecError
        from diffrec_cli.serve import load_served, recommend_for_users

        try:
            if self._served is None:
                self._served = load_served(str(self.app.home.runs_dir / self.run_id), self.app.registry(),
                                           home=self.app.home)
            served = self._served
            frame = recommend_for_users(served.model, served.data, [user], k=10, inputs=served.inputs)
            rows = [(int(r), str(i), float(s)) for r, i, s in zip(frame["rank"], frame["item"], frame["score"])]
            self.post_message(RecommendationsReady(user, rows))
        except DiffrecError as exc:
            self.post_message(RecommendationsReady(user, [], str(exc)))
        except Exception as exc:  # a damaged checkpoint must not take the dashboard down
            self.post_message(RecommendationsReady(user, [], f"{type(exc).__name__}: {exc}"))

    def on_recommendations_ready(self, message: RecommendationsReady) -> None:
        table = self.query_one("#recs", DataTable)
        table.clear()
        status = self.query_one("#rec-status", Static)
        if message.error:
            status.update(Text(message.error, style="bold red"))
            return
        status.update(f"top {len(message.rows)} unseen items for user {message.user}")
        for rank, item, score in message.rows:
            table.add_row(str(rank), item, f"{score:.4f}")
