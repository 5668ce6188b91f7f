"""Sync: what tonecore.syncpolicy says a pedal holds (the user's favorited and created
tones, the models this board runs, missing or changed by id and updated_at) ->
download -> install.  `tonebridge pedal sync` on the host follows the same policy.

Memory stays flat: tones are walked a small page at a time and only (id, platform) pairs
are kept; models are installed as their page is read; a download streams through the
HTTP client's one buffer into a .part on flash.  An interrupted download resumes from
its .part on the next sync (the pedal starts one at boot when signed in).

A full library (its MAX_MODELS) does not stop a sync: models it would add are skipped
without a download and counted (`library_full`), while new versions of installed ones
still install.
"""

import asyncio
import gc
import time

from tonecore.download import DownloadPlan
from tonecore.errors import ApiError, DownloadError, IntegrityError, SignInRequired, ToneError, TransportError
from tonecore.records import Pager
from tonecore.syncpolicy import SKIP, UP_TO_DATE, SyncPolicy

from .console import log
from .messages import WIFI
from .library import BYTES, NAME, LibraryError, LibraryFull, TooLarge, TooManyModels

TONES_PAGE = 5  # a page of tones (descriptions and all) must fit the client's 8 KB buffer
MODELS_PAGE = 10


class Sync:
    """One sync run; `status()` is what the portal shows while it runs."""

    def __init__(self, pedal):
        self.pedal = pedal
        self.state = "starting"
        self.installed = 0
        self.skipped = 0
        self.failed = 0
        self.too_large = 0  # skipped: larger than the board's MAX_MODEL_BYTES
        self.library_full = 0  # skipped: the library holds the most models this board keeps
        self.current = None  # {"id", "name", "bytes", "total"} of the download in progress
        self.checked = 0  # models looked at (each model of each tone, installed or not)
        self.expected = 0  # models the tones say they have (their models_count), once listed
        self.bytes_done = 0  # bytes of the models installed by this sync
        self.error = None
        self.started_ms = time.ticks_ms()
        self.policy = SyncPolicy(pedal.board.FORMATS, pedal.library.max_model_bytes,
                                 getattr(pedal.board, "NAM_ARCHITECTURES", None),
                                 pedal.settings.get("sync_downloaded") and pedal.client.dialect.oauth)
        self.peak_alloc = 0
        self.peak_where = None
        self.model_peak = 0
        self.seen = []  # ids of models downloaded whose .part stays (to resume): pruning keeps them
        # (model id, bytes, ms, peak mem_alloc) per download, when the pedal keeps stats
        self.stats = [] if pedal.settings.get("stats") else None

    def status(self):
        return {
            "state": self.state, "installed": self.installed, "up_to_date": self.skipped,
            "failed": self.failed, "too_large": self.too_large, "library_full": self.library_full,
            "current": self.current, "error": self.error, "checked": self.checked, "expected": self.expected,
            "bytes_done": self.bytes_done,
            "stats": self.stats,
        }

    def _page_read(self):
        self._note_memory("listing tones")
        gc.collect()

    def _note_memory(self, where="downloading"):
        used = gc.mem_alloc()
        if used > self.peak_alloc:
            self.peak_alloc = used
            self.peak_where = where
        if used > self.model_peak:
            self.model_peak = used

    async def run(self):
        pedal = self.pedal
        try:
            if pedal.library.read_only:
                raise LibraryError(pedal.library.read_only)
            self.state = "listing"
            tones = await self._tones()
            self.expected = self.policy.expected_models
            log("sync: %d tones this board can run" % len(tones))
            self.state = "downloading"
            for tone_id, platform in tones:
                await self._tone(tone_id, platform)
            dropped = pedal.library.prune_parts(self.seen)
            if dropped:
                log("sync: removed %d unfinished downloads of models no longer listed" % dropped)
            self.state = "done"
            log("sync: done: %d installed, %d up to date, %d failed, %d too large for this board"
                % (self.installed, self.skipped, self.failed, self.too_large))
            if self.library_full:
                log("sync: %d skipped: library full: %d models (the most this pedal keeps); delete some on the page"
                    % (self.library_full, pedal.library.max_models))
        except SignInRequired as exc:
            self.state = "error"
            self.error = "sign in again"
            log("sync: stopped: %s" % exc)
        except TransportError as exc:  # the Wi-Fi, DNS, a server that does not answer
            self.state = "error"
            self.error = WIFI
            log("sync: stopped: %s" % exc)
        except ToneError as exc:  # flash full, trust, redirects, API, bad answers
            self.state = "error"
            self.error = str(exc)
            log("sync: stopped: %s" % exc)
        except OSError as exc:  # the flash failed
            self.state = "error"
            self.error = "flash error: %s" % (exc,)
            log("sync: stopped: flash error: %s" % (exc,))
        except MemoryError:
            self.state = "error"
            self.error = "out of memory; the next sync continues where this one stopped"
            log("sync: stopped: out of memory (heap %d bytes free)" % gc.mem_free())
        except Exception as exc:  # a bug: the pedal keeps serving its page, the status says so
            self.state = "error"
            self.error = "internal error: %s" % (exc,)
            log("sync: stopped: internal error: %r" % (exc,))
        finally:
            self.current = None
            gc.collect()
            log("sync: peak heap in use %d bytes (%s)" % (self.peak_alloc, self.peak_where))

    async def _tones(self):
        pedal = self.pedal
        return await pedal.driver.run_async(self.policy.tones(pedal.client, TONES_PAGE, self._page_read))

    async def _tone(self, tone_id, platform):
        pedal = self.pedal
        library = pedal.library
        for architecture in self.policy.listings(platform, pedal.client.dialect):  # one coroutine: little heap
            pager = Pager(MODELS_PAGE)
            while not pager.done:
                page = await pedal.driver.run_async(pedal.client.models_page(tone_id, pager, architecture))
                todo = []
                for model in page.items:
                    self.checked += 1
                    verdict = self.policy.decide(platform, model, library.installed_version(model.id))
                    if verdict == SKIP:
                        continue
                    if verdict == UP_TO_DATE:
                        self.skipped += 1
                        continue
                    if not library.has_room(model.id):  # full: no download, no .part kept
                        self._full(model.id)
                        continue
                    # a tuple, not a dict: up to a page of these wait while the first installs
                    todo.append((model.id, model.name, model.size, model.updated_at, model.model_url,
                                 model.filename))
                page = model = None
                gc.collect()
                for item in todo:
                    await self._install(tone_id, platform, item)
                todo = None
                # let the portal answer: a page whose models are all skipped (up to date,
                # library full) may have cost no wait at all on a fast network
                await asyncio.sleep_ms(0)

    def _full(self, model_id):
        """Skip `model_id`: the library holds the most models this board keeps."""
        if not self.library_full:
            log("sync: model %d skipped: library full (%d models); the models after it are counted, not downloaded"
                % (model_id, self.pedal.library.max_models))
        self.library_full += 1

    async def _install(self, tone_id, platform, item):
        pedal = self.pedal
        model_id, name, size, updated_at, url, filename = item
        if not pedal.library.has_room(model_id):  # the models before it on the page filled it
            self._full(model_id)
            return
        plan = DownloadPlan(url, filename, platform=platform)  # its structure checked as that platform's
        self.seen.append(model_id)  # until the end of _install: its .part may stay for a resume
        part = pedal.library.open_part(model_id, {"id": model_id, "updated_at": updated_at}, plan, pedal.http.buf)
        if part.size:
            log("sync: model %d: resuming at %d bytes" % (model_id, part.size))
        self.current = {"id": model_id, "name": name, "bytes": part.size, "total": None}
        sink = _Progress(part, plan, self)
        self.model_peak = 0
        started = time.ticks_ms()
        try:
            sha = await pedal.driver.run_async(pedal.client.download(plan, sink, "model %d" % model_id))
            entry = part.install({"tone_id": tone_id, "name": name, "platform": platform, "size": size,
                                  "updated_at": updated_at, "filename": filename}, sha)
            elapsed = time.ticks_diff(time.ticks_ms(), started)
            self.installed += 1
            self.bytes_done += entry[BYTES]
            self._note_memory("installing")
            if self.stats is not None:
                self.stats.append((model_id, entry[BYTES], elapsed, self.model_peak))
            log("sync: model %d installed: %s (%d bytes in %d ms, sha256 %s)"
                % (model_id, entry[NAME], entry[BYTES], elapsed, sha[:12]))
        except TooManyModels:
            self.library_full += 1  # filled up meanwhile (a push); the .part is gone
        except LibraryFull:
            raise  # the .part gave its flash back; earlier models are untouched
        except TooLarge as exc:
            self.too_large += 1
            log("sync: model %d skipped: %s" % (model_id, exc))
        except IntegrityError as exc:
            part.discard()  # bad bytes: never resume from them
            self.failed += 1
            log("sync: model %d failed: %s" % (model_id, exc))
        except (ApiError, DownloadError) as exc:
            part.close()
            self.failed += 1
            log("sync: model %d failed: %s" % (model_id, exc))
            if isinstance(exc, ApiError) and exc.status in (403, 404):
                part.discard()
        except BaseException:
            part.close()  # the .part stays for the next sync to resume
            raise
        finally:
            self._note_memory("after a download")
            self.current = None
            if not pedal.library.has_part(model_id):  # installed or discarded: nothing to keep
                self.seen.remove(model_id)


class _Progress:
    """Wraps a PartFile: reports progress to the status and the console."""

    def __init__(self, part, plan, sync):
        self.part = part
        self.plan = plan
        self.sync = sync
        self.next_log = 0

    def write(self, chunk):
        part = self.part
        part.write(chunk)
        self.sync._note_memory()
        current = self.sync.current
        current["bytes"] = part.size
        if self.plan.total is not None:
            current["total"] = self.plan.total
        if part.size >= self.next_log:
            self.next_log = part.size + 256 * 1024
            log("sync: model %d: %d/%s bytes" % (part.model_id, part.size, current["total"] or "?"))

    def truncate(self):
        self.part.truncate()
