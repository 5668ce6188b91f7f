"""What a pedal should hold: one policy for the pedal's Wi-Fi sync (firmware/pedal/sync.py)
and the host's `tonebridge pedal sync` (host/tonebridge/cli/pedal.py).

    sources       the user's favorited and created tones (SOURCES), each tone once, and
                  optionally the tones they downloaded (today's service: DOWNLOADED)
    board filter  a platform and size class the board runs (formats.runnable over its
                  FORMATS), a NAM architecture it runs (its NAM_ARCHITECTURES; today's
                  service lists A2 models only when asked, one architecture a request:
                  `listings()` says which requests to make), and a file no larger than
                  its MAX_MODEL_BYTES (formats.fits: known only once the download has
                  a length)
    needs update  a model the pedal lacks, or whose `updated_at` differs from the one
                  of the copy it has (models are matched by id)

Memory stays flat on a pedal: tones are listed a page at a time and only
(id, platform) pairs are kept; models are judged one at a time as their page is read.
"""

from .formats import fits, runnable
from .records import Pager

SOURCES = ("favorited", "created")
DOWNLOADED = "downloaded"  # an optional source, today's service only

# what to do with one listed model (SyncPolicy.decide)
SKIP = 0  # the board cannot run its platform or size class
UP_TO_DATE = 1  # the pedal has this version
INSTALL = 2  # the pedal lacks it, or has another version


class SyncPolicy:
    """The rules for one board.

    Args:
        formats: the board's FORMATS ({platform: size classes or "*"}); None: a board
            whose facts are unknown, which is assumed to run everything.
        max_model_bytes: the board's MAX_MODEL_BYTES (None: no limit).
        architectures: the board's NAM_ARCHITECTURES (None: A1 and custom, the
            service's default listing).
        downloaded: also the tones the user downloaded (today's service).
    """

    def __init__(self, formats, max_model_bytes=None, architectures=None, downloaded=False):
        self.sources = SOURCES + (DOWNLOADED,) if downloaded else SOURCES
        self.formats = formats
        self.max_model_bytes = max_model_bytes
        self.architectures = architectures or ("1", "custom")
        self.expected_models = 0  # what the tones say they hold (models_count), after tones()

    def listings(self, platform, dialect):
        """The `architecture` of each models request for a tone of `platform`: None (the
        default listing: A1, custom and the formats without one), then "2" when the
        board runs A2 and the service takes the filter."""
        if platform == "nam" and dialect.architectures and "2" in self.architectures:
            return (None, "2")
        return (None,)

    def runs(self, platform, size=None):
        """True when the board runs `platform` (in the size class `size`, when given)."""
        if self.formats is None:
            return True
        if size is None:
            return platform in self.formats
        return runnable(self.formats, platform, size)

    def fits(self, size):
        """True when a file of `size` bytes is within the board's MAX_MODEL_BYTES."""
        return fits(self.max_model_bytes, size)

    def tones(self, client, page_size, on_page=None):
        """Call (run it with a Driver): the tones to sync, walked a page at a time.

        Args:
            client: a tonecore.client.Client.
            page_size: tones per request (the pedal keeps it small: a page of tones
                with their descriptions must fit its 8 KB buffer).
            on_page: a function called after each page (the pedal checks its heap).
        Returns:
            [(tone id, platform)] of the tones of its sources whose platform the board
            runs, each once, in listing order.
        """
        pairs = []
        self.expected_models = 0
        for which in self.sources:
            pager = Pager(page_size)
            while not pager.done:
                page = yield from client.tones_page(which, pager)
                for tone in page.items:
                    pair = (tone.id, tone.platform)
                    if self.runs(tone.platform) and pair not in pairs:
                        pairs.append(pair)
                        self.expected_models += tone.models_count or 0
                page = tone = None
                if on_page is not None:
                    on_page()
        return pairs

    def decide(self, platform, model, installed):
        """SKIP, UP_TO_DATE or INSTALL for `model`, a model of a tone of `platform`.

        Args:
            installed: the `updated_at` of the pedal's copy ("" when it has none
                recorded), or None when the pedal does not have the model.
        """
        if not self.runs(platform, model.size):
            return SKIP
        version = model.architecture_version
        if version is not None and version not in self.architectures:
            return SKIP
        if installed is not None and installed == (model.updated_at or ""):
            return UP_TO_DATE
        return INSTALL
