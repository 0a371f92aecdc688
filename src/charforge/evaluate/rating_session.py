"""A person rating an evaluation's pictures: which come next, what to show beside them, and storing each verdict.

The terminal (``charforge rate``) and the web UI ask and answer differently; what is rated, in which order, and
where it is kept is decided here, so a rating made in one appears in the other.
"""

from __future__ import annotations

from PIL import Image

from ..workspace import Workspace
from .evaluate import load_metrics
from .ratings import Rating, RatingStore
from .scores import open_rgb
from .terminal import side_by_side

RATINGS_FILE = "ratings.sqlite"


class RatingSession:
    """Open with ``with RatingSession(ws, run, rater) as session``; ``session.todo`` lists the pictures left."""

    def __init__(self, workspace: Workspace, run: str = "latest", rater: str = "", *, only_summary: bool = False) -> None:
        self.workspace, self.rater = workspace, rater
        self.metrics = load_metrics(workspace, run)
        self.eval_dir = workspace.run(run).folder / "eval"
        self.view = self.eval_dir / "rate-view.png"  # the picture beside the references, for any image viewer
        self.references = [open_rgb(p) for p in workspace.training_images()]
        self._store = RatingStore(workspace.root / RATINGS_FILE)
        rated = self._store.all(self.metrics.run, [r["file"] for r in self.metrics.images], self.eval_dir, rater)
        self.rated = len(rated)
        todo = [] if only_summary else [r for r in self.metrics.images if r["file"] not in rated]
        # The run's own pictures first, newest checkpoint first: the base model's (step 0) matter least.
        self.todo = sorted(todo, key=lambda r: (r["step"] == 0, -r["step"]))

    def __enter__(self) -> RatingSession:
        return self

    def __exit__(self, *exc) -> None:
        self._store.close()

    def picture(self, row: dict) -> Image.Image:
        return open_rgb(self.eval_dir / row["file"])

    def show(self, row: dict) -> Image.Image:
        """The picture beside every reference, written to :attr:`view` too."""
        image = side_by_side(self.picture(row), self.references)
        image.save(self.view)
        return image

    def preview(self, row: dict, *, cell: int = 96, references: int = 6) -> Image.Image:
        """A small version for a terminal: the picture beside the first references."""
        return side_by_side(self.picture(row), self.references[:references], cell=cell)

    def record(self, row: dict, good: bool, tags: tuple[str, ...] = ()) -> None:
        self._store.put(Rating(self.metrics.run, row["file"], good, tags, self.rater), self.eval_dir)
