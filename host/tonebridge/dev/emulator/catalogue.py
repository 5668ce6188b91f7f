"""The emulator's deterministic catalogue: users, tones, models, favorites.

The *structure* is a fixed table (which user owns which tone, what demo@example.com has
favorited, which tones are private, what kind of file every model is), so tests and docs
can rely on it.  The seed decides the details: user ids, dates, counts, and the bytes of
every model file (see `model_files.py`; nothing is generated until a file is requested).

Summary (independent of the seed):
    36 tones, ids 1..36, 9 creators plus `demo_player` (demo@example.com).
    demo owns tones 2, 9, 15, 22 (private), 28; has favorited 14 tones with 40 models
    (NAM standard/lite/feather/nano and a 2.6 MB custom, AIDA-X, Proteus, IRs from 2 KB
    to a 3 MB hall IR, an aa-snapshot).  Tones 33-35 are private tones of others.
    Public tones of others that demo has not favorited (1, 19-21, 23-27, 29-32, 36):
    their models are listed but not downloadable by demo (403).
    Today's dialect adds A2 NAM models (ids from 5001) to tones 3, 4 and 11; listings
    show them only for `architecture=2`.

Over 500 lines because about half of it is that table (TONES): the data reads best in
one place, next to the code that builds it.
"""

import datetime
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import List, Optional

from tonecore.records import SIZES

SITE = "https://www.tone3000.com"
DEMO_EMAIL = "demo@example.com"
CREATOR_DOMAIN = "creators.example"  # <username>@creators.example signs in as that creator
REFERENCE_TIME = datetime.datetime(2025, 11, 1, tzinfo=datetime.timezone.utc)

# The API's enums are the client's (tonecore.records.GEARS, PLATFORMS, LICENSES, SIZES).
EXTENSIONS = {"nam": ".nam", "ir": ".wav", "aida-x": ".json", "aa-snapshot": ".json", "proteus": ".json"}

MAKES = ["Marshall", "Fender", "Electro-Harmonix", "Mesa/Boogie", "Neve", "Ampeg", "Vox", "Dumble",
         "Bogner", "Lexicon", "Klon", "EVH", "Orange", "Roland", "Celestion", "Friedman", "Peavey",
         "Universal Audio", "MXR", "Soldano", "Hiwatt", "Two-Rock", "Darkglass", "Line 6", "Tech 21",
         "API", "Matchless", "Diezel", "Z.Vex", "Ibanez"]
TAGS = ["clean", "crunch", "high-gain", "bass", "fuzz", "overdrive", "cab", "reverb", "compressor",
        "preamp", "british", "american", "vintage", "modern", "di", "room", "ambient",
        "edge-of-breakup", "lead", "boost", "distortion"]
MAKE_IDS = {name: 11 + 7 * i for i, name in enumerate(MAKES)}
TAG_IDS = {name: 3 + 5 * i for i, name in enumerate(TAGS)}

CREATORS = [
    ("ampsmith", "Capturing every amp I can get my hands on. Mostly British.", True),
    ("tubeworks_tom", "Tech at a boutique amp shop; vintage Fender and Roland.", True),
    ("fuzz_and_fury", None, False),
    ("irfactory", "Cab IRs, close and room mics, 48 kHz.", True),
    ("studio_rat", "Studio outboard captures: preamps, compressors.", False),
    ("lowend_lena", "Bass rigs and bass pedals.", True),
    ("oslo_captures", "High-gain captures from Oslo.", True),
    ("vintage_vault", None, False),
    ("captures_lab", "Experimental captures.", False),
]


@dataclass
class ModelSpec:
    """One row of the table: a model's name, Size and file parameters."""

    name: str
    size: str = "standard"
    params: dict = field(default_factory=dict)


def M(name, size="standard", **params):
    return ModelSpec(name, size, params)


# id, owner, short (file prefix), title, gear, platform, license, makes, tags, public, models
TONES = [
    (1, "ampsmith", "jcm800-2203", "Marshall JCM800 2203 - Full Gain Sweep", "amp", "nam", "cc-by",
     ["Marshall"], ["crunch", "high-gain", "british"], True,
     [M("Gain 3"), M("Gain 6"), M("Gain 9")]),
    (2, "demo_player", "plexi-jumped", "'68 Plexi Super Lead - Jumped Channels", "amp", "nam", "t3k",
     ["Marshall"], ["crunch", "vintage", "british"], True,
     [M("Volume 6 Bright"), M("Volume 6 Bright (Lite)", "lite"), M("Volume 6 Bright (Feather)", "feather"),
      M("Volume 6 Bright (Nano)", "nano")]),
    (3, "tubeworks_tom", "deluxe-65", "Fender '65 Deluxe Reverb - Vibrato Channel", "amp", "nam", "cc-by-sa",
     ["Fender"], ["clean", "edge-of-breakup", "american"], True,
     [M("Vol 3 Clean"), M("Vol 5 Edge"), M("Vol 7 Breakup"), M("Vol 5 Edge (Lite)", "lite"),
      M("Vol 5 Edge (Feather)", "feather"), M("Vol 5 Edge (Nano)", "nano")]),
    (4, "fuzz_and_fury", "big-muff-nyc", "Big Muff Pi NYC Reissue", "pedal", "nam", "cc-by-nc",
     ["Electro-Harmonix"], ["fuzz"], True,
     [M("Sustain 7 Tone 5", "feather"), M("Sustain 10 Tone 3", "nano"), M("Sustain 4 Tone 6", "nano")]),
    (5, "irfactory", "mesa-os-v30", "Mesa 4x12 Oversized V30 - Close Mics", "ir", "ir", "cco",
     ["Mesa/Boogie", "Celestion"], ["cab", "modern"], True,
     [M("SM57 Cap Edge", ms=200), M("SM57 Cone", ms=200), M("MD421 Off-Axis", ms=200),
      M("R121 Ribbon", ms=500), M("Blend 57 + 121", ms=170, bits=16)]),
    (6, "studio_rat", "neve-1073", "Neve 1073 Preamp - Line In", "outboard", "nam", "cc-by-nd",
     ["Neve"], ["preamp"], True,
     [M("+40 dB Warm"), M("+40 dB Warm (Lite)", "lite")]),
    (7, "lowend_lena", "svt-cl-810", "Ampeg SVT-CL + 8x10 Full Rig", "full-rig", "nam", "cc-by-nc-sa",
     ["Ampeg"], ["bass"], True,
     [M("Growl"), M("Growl (Lite)", "lite"), M("Clean DI Blend", "feather")]),
    (8, "ampsmith", "ac30-top-boost", "Vox AC30 Top Boost", "amp", "aida-x", "cc-by",
     ["Vox"], ["crunch", "british", "vintage"], True,
     [M("Normal Channel Clean", hidden=32), M("Top Boost Chime", hidden=36), M("Top Boost Cranked", hidden=40)]),
    (9, "demo_player", "ts808-blackface", "TS808 into Blackface - Pedal Stack", "pedal", "nam", "cc-by",
     ["Ibanez"], ["overdrive"], True,
     [M("TS808 Drive 5"), M("TS808 Drive 5 (Nano)", "nano")]),
    (10, "vintage_vault", "ods-overdrive", "Dumble-style ODS - Overdrive Channel", "amp", "proteus", "cc-by-nc-nd",
     ["Dumble"], ["overdrive", "lead"], True,
     [M("ODS Drive 4", hidden=40), M("ODS Drive 7", hidden=36)]),
    (11, "oslo_captures", "ecstasy-red", "Bogner Ecstasy 101B - Red Channel", "amp", "nam", "t3k",
     ["Bogner"], ["high-gain", "lead"], True,
     [M("Red Plexi Mode"), M("Red Modern"), M("Red Modern (Lite)", "lite"), M("Red Modern (Feather)", "feather")]),
    (12, "irfactory", "480l-hall", "Lexicon 480L Large Hall - Summed Mono IR", "ir", "ir", "cc-by",
     ["Lexicon"], ["reverb", "ambient"], True,
     [M("Large Hall 22s", "custom", samples=1048576), M("Small Hall 2.5s", ms=2500)]),
    (13, "fuzz_and_fury", "klon-ktr", "Klon Centaur KTR - Low Gain Boost", "pedal", "proteus", "cc-by-sa",
     ["Klon"], ["overdrive", "boost"], True,
     [M("Gain 10 o'clock", hidden=32)]),
    (14, "oslo_captures", "5150iii-blue", "EVH 5150III 50W - Blue Channel (Hi-Res)", "amp", "nam", "cc-by-nc",
     ["EVH"], ["high-gain", "modern"], True,
     [M("Blue Channel Hi-Res", "custom", channels=(48, 24)), M("Blue Channel")]),
    (15, "demo_player", "rockerverb-dirty", "Orange Rockerverb 50 MkIII - Dirty Channel", "amp", "aida-x", "cc-by-sa",
     ["Orange"], ["crunch", "british"], True,
     [M("Dirty Gain 4", hidden=36), M("Dirty Gain 8", hidden=40)]),
    (16, "tubeworks_tom", "jc120", "Roland JC-120 Jazz Chorus", "amp", "aida-x", "t3k",
     ["Roland"], ["clean"], True,
     [M("Clean Bright", hidden=40, unit="GRU"), M("Clean Warm", hidden=38)]),
    (17, "irfactory", "greenback-2x12-room", "Celestion Greenback 2x12 - Room Mics", "ir", "ir", "cc-by-nc-sa",
     ["Celestion"], ["cab", "room", "vintage"], True,
     [M("Room L Short", samples=1000, bits=16), M("Room R Short", samples=1000, bits=16),
      M("Room Far", ms=300), M("Room Blend", ms=100, bits=16)]),
    (18, "studio_rat", "be100-rig", "Friedman BE-100 Full Rig Snapshot", "full-rig", "aa-snapshot", "cco",
     ["Friedman"], ["high-gain"], True,
     [M("BE Channel Rig")]),
    (19, "ampsmith", "6505-lead", "Peavey 6505+ Lead Channel", "amp", "nam", "cc-by-nd",
     ["Peavey"], ["high-gain"], True,
     [M("Lead Pre 5"), M("Lead Pre 7")]),
    (20, "studio_rat", "la2a", "Teletronix LA-2A Leveling Amplifier", "outboard", "nam", "cc-by-nc-nd",
     ["Universal Audio"], ["compressor"], True,
     [M("Compress Peak 50", "lite")]),
    (21, "fuzz_and_fury", "dist-plus", "MXR Distortion+ (Vintage)", "pedal", "nam", "cco",
     ["MXR"], ["distortion"], True,
     [M("Dist 6", "nano"), M("Dist 9", "feather")]),
    (22, "demo_player", "5150-block-wip", "5150 Block Letter - Work in Progress", "amp", "nam", "t3k",
     ["Peavey"], ["high-gain"], False,
     [M("Lead Pre 6"), M("Lead Pre 6 (Big)", "custom", channels=(24, 12))]),
    (23, "vintage_vault", "slo100-crunch", "Soldano SLO-100 Crunch Channel", "amp", "proteus", "t3k",
     ["Soldano"], ["crunch"], True,
     [M("Crunch Bright", hidden=40)]),
    (24, "tubeworks_tom", "dr103", "Hiwatt DR103 Custom 100", "amp", "nam", "cc-by-sa",
     ["Hiwatt"], ["clean", "british"], True,
     [M("Normal Vol 6"), M("Normal Vol 6 (Lite)", "lite"), M("Normal Vol 6 (Feather)", "feather")]),
    (25, "vintage_vault", "two-rock-csig", "Two-Rock Classic Reverb Signature", "amp", "aida-x", "cc-by-nc",
     ["Two-Rock"], ["clean", "american"], True,
     [M("Clean Bright Switch", hidden=36), M("Lead Channel", hidden=40)]),
    (26, "irfactory", "ppc412-pack", "Orange PPC412 Cab - Multi-Mic Pack", "ir", "ir", "cc-by-nc-nd",
     ["Orange", "Celestion"], ["cab"], True,
     [M("SM57 Center", ms=200), M("e906 Edge", ms=200), M("Royer 121", ms=400)]),
    (27, "lowend_lena", "b7k-ultra", "Darkglass B7K Ultra - Bass Preamp", "pedal", "aida-x", "cc-by",
     ["Darkglass"], ["bass", "di"], True,
     [M("Grunt Mid Drive 5", hidden=40)]),
    (28, "demo_player", "eob-board", "Edge of Breakup Pedalboard Snapshot", "full-rig", "aa-snapshot", "cc-by-nc",
     ["Fender", "Ibanez"], ["edge-of-breakup"], True,
     [M("Edge of Breakup Board")]),
    (29, "lowend_lena", "sansamp-bdi", "Tech 21 SansAmp Bass Driver DI", "pedal", "nam", "cc-by-nc-sa",
     ["Tech 21"], ["bass", "di"], True,
     [M("Drive 9 o'clock"), M("Drive 9 o'clock (Nano)", "nano")]),
    (30, "studio_rat", "api-2500", "API 2500 Bus Compressor", "outboard", "nam", "cc-by",
     ["API"], ["compressor"], True,
     [M("Ratio 4 Medium Knee")]),
    (31, "oslo_captures", "dc30-ch2", "Matchless DC-30 Full Rig - Channel 2", "full-rig", "nam", "t3k",
     ["Matchless"], ["crunch", "vintage"], True,
     [M("Ch2 Vol 7"), M("Ch2 Vol 7 (Lite)", "lite")]),
    (32, "ampsmith", "ambient-swells", "Helix-style Ambient Swells Snapshot", "full-rig", "aa-snapshot", "cc-by-sa",
     ["Line 6"], ["ambient", "reverb"], True,
     [M("Swells Board")]),
    (33, "oslo_captures", "mark-iic-unreleased", "Mesa Mark IIC+ - Unreleased Captures", "amp", "nam", "t3k",
     ["Mesa/Boogie"], ["high-gain", "lead"], False,
     [M("Lead Gain 8"), M("Lead Gain 8 (Lite)", "lite"), M("Rhythm Gain 6")]),
    (34, "irfactory", "test-irs", "Test IRs (do not use)", "ir", "ir", "cco",
     ["Celestion"], ["cab"], False,
     [M("Test 1", ms=50)]),
    (35, "fuzz_and_fury", "fuzz-factory-exp", "Z.Vex Fuzz Factory Experiments", "pedal", "nam", "cc-by",
     ["Z.Vex"], ["fuzz"], False,
     [M("Gate Sputter"), M("Stab Squeal", "nano")]),
    (36, "captures_lab", "vh4-ch3-lstm", "Diezel VH4 Channel 3 - LSTM Capture", "amp", "nam", "cc-by",
     ["Diezel"], ["high-gain", "modern"], True,
     [M("Ch3 Gain 2pm (LSTM)", "custom", arch="LSTM", hidden=32, layers=2), M("Ch3 Gain 2pm")]),
]

# With --bench-files: a private tone of demo's holding long IRs (a noise tail repeated),
# sized for throughput and memory benchmarks (host: 2 MB / 20 MB; pedal: 40 KB / 4 MB).  Not part of the default catalogue.
BENCH_TONE = (90, "demo_player", "bench", "Benchmark IRs (long tails)", "ir", "ir", "cco",
              ["Lexicon"], ["reverb", "room"], False,
              [M("Tail 2 MB", samples=24000, bits=24, repeat=29),
               M("Tail 20 MB", samples=24000, bits=24, repeat=291),
               M("Tail 4 MB", samples=24000, bits=24, repeat=58),
               M("Tail 40 KB", samples=13600, bits=24, repeat=1)])

# `add_many_models(n)` (tonebridge emulator --many-models N): a public tone of n tiny, valid
# IRs (a 2 KB 48 kHz PCM WAV each) that demo favorited last, for the pedal's library bound
# ("anyone who publishes such a tone can do this to pedals that favourite it").  Its model
# ids start at MANY_FIRST_ID so that no other id moves.
MANY_TONE_ID = 91
MANY_FIRST_ID = 100001

# NAM "A2" models (TONE3000's second standard architecture), added to these tones after
# everything else so that every other id stays as it was.  A listing leaves them out
# unless it asks for `architecture=2` (today's dialect; the seed's v1 never shows them).
A2_MODELS = [
    (3, [M("Vol 5 Edge (A2)", a2=True), M("Vol 5 Edge (A2 Nano)", "nano", a2=True)]),
    (4, [M("Sustain 7 Tone 5 (A2)", "feather", a2=True)]),
    (11, [M("Red Modern (A2)", a2=True)]),
]
A2_FIRST_ID = 5001

# demo's favorites, most recently favorited first (the listing's order).
DEMO_FAVORITES = [3, 8, 5, 10, 4, 11, 12, 6, 16, 7, 13, 17, 14, 18]
DESCRIPTIONS = [
    "Captured with NAM at 48 kHz through a reamp box; levels noted in the metadata.",
    "Straight into the interface, no EQ afterwards. Enjoy!",
    "A favourite in the studio. Use with a cab IR.",
    None,
    "Full gain sweep, every model named after the knob positions.",
]


@dataclass
class User:
    id: str
    username: str
    email: str
    avatar_url: Optional[str]
    bio: Optional[str]
    links: Optional[List[str]]
    created_at: str
    updated_at: str

    @property
    def url(self):
        return "%s/%s" % (SITE, self.username)

    def embedded(self):
        """The EmbeddedUser shape."""
        return {"id": self.id, "username": self.username, "avatar_url": self.avatar_url, "url": self.url}

    def to_json(self):
        """The User shape."""
        data = self.embedded()
        data.update(bio=self.bio, links=self.links, created_at=self.created_at, updated_at=self.updated_at)
        return data


@dataclass
class Model:
    id: int
    tone_id: int
    user_id: str
    name: str
    size: str
    filename: str
    platform: str
    params: dict
    created_at: str
    updated_at: str
    version: int = 0  # bumped by POST /_emulator/models/{id}/update: new bytes, new updated_at

    @property
    def architecture_version(self):
        """"2" for an A2 NAM model, "1" for a standard-size WaveNet, "custom" for other
        NAM models (LSTMs, odd sizes); None for the other formats."""
        if self.platform != "nam":
            return None
        if self.params.get("a2"):
            return "2"
        return "custom" if self.size == "custom" or self.params.get("arch") == "LSTM" else "1"

    def to_json(self, base_url, dialect="v1"):
        """The Model shape; model_url points at the emulator itself."""
        data = {
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "user_id": self.user_id,
            "model_url": "%s/api/v1/models/%d/download/%s" % (base_url, self.id, self.filename),
            "name": self.name,
            "size": self.size,
            "tone_id": self.tone_id,
        }
        if dialect != "v1":
            data["architecture_version"] = self.architecture_version
        return data


@dataclass
class Tone:
    id: int
    user: User
    title: str
    description: Optional[str]
    gear: str
    platform: str
    license: str
    is_public: bool
    images: Optional[List[str]]
    links: Optional[List[str]]
    makes: List[str]
    tags: List[str]
    models: List[Model]
    downloads_count: int
    favorites_count: int
    created_at: str
    updated_at: str

    @property
    def sizes(self):
        present = {m.size for m in self.models}
        return [s for s in SIZES if s in present]

    def to_json(self, dialect="v1"):
        """The Tone shape: the seed's (v1), or today's (`format` for `platform`, gear
        `full-rig` answered as `amp-cab`)."""
        data = {
            "id": self.id,
            "user_id": self.user.id,
            "user": self.user.embedded(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "title": self.title,
            "description": self.description,
            "gear": self.gear,
            "images": self.images,
            "is_public": self.is_public,
            "links": self.links,
            "platform": self.platform,
            "license": self.license,
            "sizes": self.sizes,
            "makes": [{"id": MAKE_IDS[name], "name": name} for name in self.makes],
            "tags": [{"id": TAG_IDS[name], "name": name} for name in self.tags],
            "models_count": len(self.listed_models()),
            "downloads_count": self.downloads_count,
            "favorites_count": self.favorites_count,
            "url": "%s/tones/%s-%d" % (SITE, slugify(self.title), self.id),
        }
        if dialect != "v1":
            data["format"] = data.pop("platform")
            if data["gear"] == "full-rig":
                data["gear"] = "amp-cab"
        return data

    def listed_models(self, architecture=None):
        """The models a listing shows: without `architecture` the legacy set (A1, custom
        and the formats that have none), else only that architecture version."""
        if architecture is None:
            return [m for m in self.models if m.architecture_version != "2"]
        return [m for m in self.models if m.architecture_version == architecture]


def slugify(text):
    """'Fender '65 Deluxe' -> 'fender-65-deluxe'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower().replace("'", "").replace("+", " plus ")).strip("-")


def iso(moment):
    """ISO 8601 in UTC as the service writes it (microseconds, +00:00)."""
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")


class Catalogue:
    """Users, tones, models and favorites, built from `seed`; new users added on sign-in.

    Attributes:
        seed: the seed it was built from.
        users: id -> User.  tones: id -> Tone (ascending ids).  models: id -> Model.
        demo: the User of demo@example.com.
    """

    def __init__(self, seed, bench_files=False):
        self.seed = seed
        rng = random.Random("catalogue:%d" % seed)
        self.users = {}
        self._by_email = {}
        self._by_name = {}
        self.favorites = {}  # user id -> [(tone id, favorited_at)], newest first
        self.downloads = {}  # user id -> [tone id], most recently downloaded first
        start = datetime.datetime(2023, 1, 9, 10, 0, tzinfo=datetime.timezone.utc)
        self.demo = self._add_user(rng, "demo_player", DEMO_EMAIL, "Weekend player; pedals on ESP32 boards.",
                                   True, start)
        for i, (name, bio, avatar) in enumerate(CREATORS):
            self._add_user(rng, name, "%s@%s" % (name, CREATOR_DOMAIN), bio, avatar,
                           start - datetime.timedelta(days=300 - 20 * i))
        self.tones = {}
        self.models = {}
        moment = datetime.datetime(2023, 3, 1, 9, 0, tzinfo=datetime.timezone.utc)
        next_model = 1001
        for row in TONES:
            moment += datetime.timedelta(days=rng.randint(5, 35), minutes=rng.randint(0, 1439))
            tone = self._add_tone(rng, row, moment, next_model)
            next_model += len(tone.models)
        self.favorites[self.demo.id] = self._favorite_times(rng, DEMO_FAVORITES)
        self._add_a2_models()
        if bench_files:  # after everything else: the default catalogue stays byte-identical
            self._add_tone(rng, BENCH_TONE, moment + datetime.timedelta(days=1), next_model)

    def add_many_models(self, count):
        """Add tone MANY_TONE_ID with `count` tiny IRs, favorited by demo most recently.

        Returns:
            the Tone.
        """
        if MANY_TONE_ID in self.tones:
            raise ValueError("the many-models tone is already in the catalogue")
        rng = random.Random("many:%d:%d" % (self.seed, count))
        row = (MANY_TONE_ID, "irfactory", "many-tiny", "Many Tiny IRs (%d models)" % count, "ir", "ir", "cco",
               ["Celestion"], ["cab"], True, [M("Tiny %d" % n, samples=1000, bits=16) for n in range(1, count + 1)])
        tone = self._add_tone(rng, row, REFERENCE_TIME - datetime.timedelta(days=2), MANY_FIRST_ID)
        favorites = self.favorites[self.demo.id]
        newest = datetime.datetime.fromisoformat(favorites[0][1]) if favorites else REFERENCE_TIME
        favorites.insert(0, (MANY_TONE_ID, iso(newest + datetime.timedelta(minutes=5))))
        return tone

    def _add_a2_models(self):
        """The A2 models (A2_MODELS), dated like the tone's last model."""
        model_id = A2_FIRST_ID
        for tone_id, specs in A2_MODELS:
            tone = self.tones[tone_id]
            last = tone.models[-1]
            for spec in specs:
                model = Model(model_id, tone_id, tone.user.id, spec.name, spec.size,
                              slugify("%s %s" % (last.filename.rsplit(".", 1)[0].split("-")[0], spec.name))
                              + EXTENSIONS[tone.platform], tone.platform, dict(spec.params), last.created_at,
                              last.updated_at)
                tone.models.append(model)
                self.models[model.id] = model
                model_id += 1

    def _add_user(self, rng, username, email, bio, avatar, created):
        user = User(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            username=username,
            email=email,
            avatar_url=("%s/avatars/%s.png" % (SITE, username)) if avatar else None,
            bio=bio,
            links=["https://www.youtube.com/@%s" % username.replace("_", "")] if bio else None,
            created_at=iso(created),
            updated_at=iso(created + datetime.timedelta(days=rng.randint(0, 400))),
        )
        self.users[user.id] = user
        self._by_email[email.lower()] = user
        self._by_name[username] = user
        return user

    def _add_tone(self, rng, row, created, first_model_id):
        tone_id, owner, short, title, gear, platform, license_, makes, tags, public, specs = row
        user = self._by_name[owner]
        updated = min(created + datetime.timedelta(days=rng.randint(0, 90), seconds=rng.randint(0, 86399)),
                      REFERENCE_TIME)
        models = []
        for offset, spec in enumerate(specs):
            stamp = created + datetime.timedelta(seconds=30 * offset + rng.randint(1, 29))
            model = Model(
                id=first_model_id + offset,
                tone_id=tone_id,
                user_id=user.id,
                name=spec.name,
                size=spec.size,
                filename=slugify("%s %s" % (short, spec.name)) + EXTENSIONS[platform],
                platform=platform,
                params=dict(spec.params),
                created_at=iso(stamp),
                updated_at=iso(stamp),
            )
            models.append(model)
            self.models[model.id] = model
        with_media = rng.random() < 0.6
        tone = Tone(
            id=tone_id,
            user=user,
            title=title,
            description=DESCRIPTIONS[rng.randrange(len(DESCRIPTIONS))],
            gear=gear,
            platform=platform,
            license=license_,
            is_public=public,
            images=["%s/images/tones/%d/%d.jpg" % (SITE, tone_id, n) for n in range(1, rng.randint(2, 4))]
            if with_media else None,
            links=["https://www.youtube.com/watch?v=%s" % _video_id(rng)] if with_media and rng.random() < 0.7 else None,
            makes=list(makes),
            tags=list(tags),
            models=models,
            downloads_count=rng.randint(40, 25000) if public else 0,
            favorites_count=rng.randint(3, 1200) if public else 0,
            created_at=iso(created),
            updated_at=iso(updated),
        )
        self.tones[tone_id] = tone
        return tone

    def _favorite_times(self, rng, tone_ids):
        moment = REFERENCE_TIME - datetime.timedelta(hours=rng.randint(2, 48))
        favorites = []
        for tone_id in tone_ids:
            favorites.append((tone_id, iso(moment)))
            moment -= datetime.timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 1439))
        return favorites

    # -- look-ups -------------------------------------------------------------------

    def user_for_email(self, email, now):
        """The user signing in as `email`: demo, a creator, or a new empty user."""
        key = email.strip().lower()
        user = self._by_email.get(key)
        if user is None:
            local = re.sub(r"[^a-z0-9_]+", "_", key.split("@", 1)[0]).strip("_")[:20] or "player"
            ident = uuid.uuid5(uuid.NAMESPACE_URL, "tonebridge-emulator:%d:%s" % (self.seed, key))
            stamp = iso(now)
            user = User(str(ident), "%s_%s" % (local, ident.hex[:4]), key, None, None, None, stamp, stamp)
            self.users[user.id] = user
            self._by_email[key] = user
        return user

    def created_by(self, user_id):
        """Tones of `user_id`, newest first (private ones included: the owner asks)."""
        tones = [t for t in self.tones.values() if t.user.id == user_id]
        return sorted(tones, key=lambda t: (t.created_at, t.id), reverse=True)

    def favorited_by(self, user_id):
        """Tones `user_id` has favorited, most recently favorited first."""
        return [self.tones[tone_id] for tone_id, _ in self.favorites.get(user_id, [])]

    def downloaded_by(self, user_id):
        """Tones `user_id` downloaded a model of, most recent first."""
        return [self.tones[tone_id] for tone_id in self.downloads.get(user_id, [])]

    def note_download(self, user_id, tone_id):
        """Record that `user_id` downloaded a model of `tone_id` (newest first, no repeats)."""
        seen = self.downloads.setdefault(user_id, [])
        if tone_id in seen:
            seen.remove(tone_id)
        seen.insert(0, tone_id)

    def has_favorited(self, user_id, tone_id):
        return any(tid == tone_id for tid, _ in self.favorites.get(user_id, []))

    def can_view(self, user_id, tone):
        """Tone visible to the user: public, or their own."""
        return tone.is_public or tone.user.id == user_id

    def can_download(self, user_id, tone):
        """Only the owner and users who favorited the tone may download its models."""
        return tone.user.id == user_id or self.has_favorited(user_id, tone.id)


def _video_id(rng):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(rng.choice(alphabet) for _ in range(11))
