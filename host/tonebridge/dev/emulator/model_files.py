"""Model files in their real formats, generated deterministically and lazily.

* `.nam`: Neural Amp Modeler JSON (`version`, `metadata`, `architecture`, `config`,
  `weights`, `sample_rate`).  WaveNet configs are the trainer's standard / lite /
  feather / nano presets, so the weight counts (13802 / 6554 / 3026 / 842) and file
  sizes (about 310 / 145 / 67 / 19 KB) are those of real files; `custom` ones are wider
  WaveNets or LSTMs.
* AIDA-X and Proteus `.json`: the PyTorch export (`model_data`, `state_dict`) of an
  LSTM/GRU "SimpleRNN", 100-170 KB.
* aa-snapshot `.json`: a rig snapshot (blocks with an embedded model and cab IR).
* IR `.wav`: RIFF/WAVE PCM, mono, 48 kHz, 16 or 24 bit, from 2 KB to 3 MB.

Bytes depend only on (seed, model id).  A file is built on first request and cached.
"""

import array
import datetime
import hashlib
import json
import math
import random
import struct
import sys
import threading
from dataclasses import dataclass
from email.utils import format_datetime

NAM_VERSION = "0.5.4"
SAMPLE_RATE = 48000
LITE_DILATIONS = ([1, 2, 4, 8, 16, 32, 64], [128, 256, 512, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
STANDARD_DILATIONS = ([1, 2, 4, 8, 16, 32, 64, 128, 256, 512],) * 2
WAVENET_PRESETS = {  # size -> ((channels of array 1, array 2), dilations)
    "standard": ((16, 8), STANDARD_DILATIONS),
    "lite": ((12, 6), LITE_DILATIONS),
    "feather": ((8, 4), LITE_DILATIONS),
    "nano": ((4, 2), LITE_DILATIONS),
    "custom": ((24, 12), STANDARD_DILATIONS),
}
NAM_GEAR_TYPES = {"amp": "amp", "full-rig": "amp_cab", "pedal": "pedal", "outboard": "studio", "ir": "amp_cab"}
TONE_TYPES = {"clean": "clean", "edge-of-breakup": "crunch", "crunch": "crunch", "overdrive": "overdrive",
              "boost": "overdrive", "distortion": "hi_gain", "high-gain": "hi_gain", "fuzz": "fuzz"}
CONTENT_TYPES = {".nam": "application/octet-stream", ".json": "application/json", ".wav": "audio/wav"}


@dataclass
class ModelFile:
    """A generated file: its bytes and validators."""

    data: bytes
    sha256: str
    content_type: str
    last_modified: str  # HTTP date

    @property
    def size(self):
        return len(self.data)

    @property
    def etag(self):
        """Strong ETag: quoted prefix of the SHA-256."""
        return '"%s"' % self.sha256[:32]


class FileStore:
    """Builds each model's file once (thread-safe) and keeps it."""

    def __init__(self, catalogue):
        self.catalogue = catalogue
        self._files = {}
        self._lock = threading.Lock()

    def forget(self, model_id):
        """Drop a built file (its model changed)."""
        with self._lock:
            self._files.pop(model_id, None)

    def cached(self, model_id):
        return self._files.get(model_id)

    def get(self, model):
        """The ModelFile of `model` (built now if needed; may take a few 100 ms)."""
        found = self._files.get(model.id)
        if found is not None:
            return found
        with self._lock:
            found = self._files.get(model.id)
            if found is None:
                tone = self.catalogue.tones[model.tone_id]
                seed = "file:%d:%d" % (self.catalogue.seed, model.id)
                if model.version:  # an updated model: other bytes, same kind and size class
                    seed += ":v%d" % model.version
                data = build(model, tone, random.Random(seed))
                modified = datetime.datetime.fromisoformat(model.updated_at)
                ext = model.filename[model.filename.rfind("."):]
                found = ModelFile(data, hashlib.sha256(data).hexdigest(), CONTENT_TYPES.get(ext, "application/octet-stream"),
                                  format_datetime(modified, usegmt=True))
                self._files[model.id] = found
        return found


def build(model, tone, rng):
    """The bytes of `model`'s file."""
    if model.platform == "ir":
        return ir_wav(rng, model.params)
    if model.platform == "nam":
        return _dump(nam_file(rng, model, tone))
    if model.platform == "aida-x":
        return _dump(rnn_file(rng, model.params.get("hidden", 40), model.params.get("unit", "LSTM"), aida=True))
    if model.platform == "proteus":
        return _dump(rnn_file(rng, model.params.get("hidden", 40), "LSTM", aida=False))
    return _dump(snapshot_file(rng, model, tone))


def _dump(obj):
    return json.dumps(obj).encode()


def _floats(rng, count, scale=0.08):
    gauss = rng.gauss
    return [gauss(0.0, scale) for _ in range(count)]


# -- NAM ----------------------------------------------------------------------------

def wavenet_config(channels, dilations):
    """A NAM WaveNet config of two layer arrays (the trainer's layout)."""
    first, second = channels
    return {
        "layers": [
            {"input_size": 1, "condition_size": 1, "head_size": second, "channels": first, "kernel_size": 3,
             "dilations": list(dilations[0]), "activation": "Tanh", "gated": False, "head_bias": False},
            {"input_size": first, "condition_size": 1, "head_size": 1, "channels": second, "kernel_size": 3,
             "dilations": list(dilations[1]), "activation": "Tanh", "gated": False, "head_bias": True},
        ],
        "head": None,
        "head_scale": 0.02,
    }


def wavenet_weight_count(config):
    """Number of weights NAM expects for a WaveNet config (+1 for head_scale)."""
    total = 0
    for layer in config["layers"]:
        ch, k, head = layer["channels"], layer["kernel_size"], layer["head_size"]
        total += layer["input_size"] * ch  # rechannel
        per_layer = k * ch * ch + ch + layer["condition_size"] * ch + ch * ch + ch
        total += per_layer * len(layer["dilations"])
        total += ch * head + (head if layer["head_bias"] else 0)
    return total + 1


def lstm_weight_count(config):
    hidden, total, inputs = config["hidden_size"], 0, config["input_size"]
    for _ in range(config["num_layers"]):
        total += 4 * hidden * (inputs + hidden) + 4 * hidden + 2 * hidden
        inputs = hidden
    return total + hidden + 1


def nam_file(rng, model, tone):
    params = model.params
    if params.get("arch") == "LSTM":
        architecture = "LSTM"
        config = {"input_size": 1, "hidden_size": params.get("hidden", 24), "num_layers": params.get("layers", 1)}
        count = lstm_weight_count(config)
    else:
        architecture = "WaveNet"
        channels, dilations = WAVENET_PRESETS[model.size]
        config = wavenet_config(params.get("channels", channels), dilations)
        count = wavenet_weight_count(config)
    made = datetime.datetime.fromisoformat(model.created_at)
    tone_type = next((TONE_TYPES[t] for t in tone.tags if t in TONE_TYPES), None)
    return {
        "version": NAM_VERSION,
        "metadata": {
            "date": {"year": made.year, "month": made.month, "day": made.day,
                     "hour": made.hour, "minute": made.minute, "second": made.second},
            "loudness": round(rng.uniform(-24.0, -12.0), 6),
            "gain": round(rng.uniform(0.1, 0.95), 6),
            "name": model.name,
            "modeled_by": tone.user.username,
            "gear_type": NAM_GEAR_TYPES[tone.gear],
            "gear_make": tone.makes[0],
            "gear_model": tone.title.split(" - ")[0],
            "tone_type": tone_type,
            "input_level_dbu": 12.2,
            "output_level_dbu": round(rng.uniform(6.0, 18.0), 1),
            "training": {
                "settings": {"ignore_checks": False},
                "data": {"latency": {"manual": None, "calibration": {"algorithm_version": 1, "delays": [0],
                                                                     "safety_factor": 1, "recommended": -1,
                                                                     "warnings": {"matches_lookahead": False,
                                                                                  "disagreement_too_high": False}}},
                         "checks": {"version": 3, "passed": True}},
                "validation_esr": round(rng.uniform(0.002, 0.03), 6),
            },
        },
        "architecture": architecture,
        "config": config,
        "weights": _floats(rng, count),
        "sample_rate": SAMPLE_RATE,
    }


# -- AIDA-X / Proteus ---------------------------------------------------------------

def rnn_file(rng, hidden, unit, aida):
    """PyTorch "SimpleRNN" export: one recurrent layer and a linear head."""
    gates = (3 if unit == "GRU" else 4) * hidden

    def matrix(rows, cols):
        return [_floats(rng, cols, 0.15) for _ in range(rows)]

    model_data = {"model": "SimpleRNN", "input_size": 1, "skip": 1 if not aida else 0, "output_size": 1,
                  "unit_type": unit, "num_layers": 1, "hidden_size": hidden, "bias_fl": True}
    if aida:
        model_data = {"model": "SimpleRNN", "input_shape": [None, None, 1], "input_size": 1, "skip": 0,
                      "output_size": 1, "unit_type": unit, "num_layers": 1, "hidden_size": hidden,
                      "bias_fl": True, "sample_rate": SAMPLE_RATE}
    return {
        "model_data": model_data,
        "state_dict": {
            "rec.weight_ih_l0": matrix(gates, 1),
            "rec.weight_hh_l0": matrix(gates, hidden),
            "rec.bias_ih_l0": _floats(rng, gates, 0.1),
            "rec.bias_hh_l0": _floats(rng, gates, 0.1),
            "lin.weight": matrix(1, hidden),
            "lin.bias": _floats(rng, 1, 0.01),
        },
    }


# -- aa-snapshot --------------------------------------------------------------------

def snapshot_file(rng, model, tone):
    config = wavenet_config(*WAVENET_PRESETS["feather"])
    return {
        "format": "aa-snapshot",
        "version": 2,
        "name": model.name,
        "author": tone.user.username,
        "sample_rate": SAMPLE_RATE,
        "blocks": [
            {"type": "noise_gate", "enabled": True, "threshold_db": round(rng.uniform(-70, -50), 1)},
            {"type": "amp", "enabled": True, "architecture": "WaveNet", "config": config,
             "weights": _floats(rng, wavenet_weight_count(config))},
            {"type": "cab", "enabled": True, "ir": {"sample_rate": SAMPLE_RATE,
                                                     "samples": _floats(rng, 2048, 0.05)}},
            {"type": "eq", "enabled": True, "bands": [{"freq": f, "gain_db": round(rng.uniform(-4, 4), 1), "q": 0.7}
                                                      for f in (100, 400, 1600, 6400)]},
            {"type": "reverb", "enabled": rng.random() < 0.5, "mix": round(rng.uniform(0.05, 0.3), 2)},
        ],
    }


# -- impulse responses --------------------------------------------------------------

def ir_wav(rng, params):
    """A mono 48 kHz PCM WAV: an impulse followed by exponentially decaying noise
    (params: ms or samples, bits; `repeat` N: the samples N times over, for big files)."""
    bits = params.get("bits", 24)
    count = params.get("samples") or int(SAMPLE_RATE * params.get("ms", 200) / 1000)
    count += count % 2  # keep the data chunk even: no pad byte
    full = (1 << (bits - 1)) - 1
    decay = math.exp(math.log(1e-4) / count)  # -80 dB at the end
    level = 0.5 * full
    rand = rng.random
    samples = array.array("i", [0] * count)
    samples[0] = int(0.95 * full)
    for i in range(1, count):
        samples[i] = int((rand() * 2.0 - 1.0) * level)
        level *= decay
    if bits == 16:
        data = _little_endian(array.array("h", samples))
    else:  # the low 3 bytes of each little-endian int32 are the 24-bit sample
        raw = _little_endian(samples)
        data = bytearray(3 * count)
        for k in range(3):
            data[k::3] = raw[k::4]
        data = bytes(data)
    data *= params.get("repeat", 1)
    block = bits // 8
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * block, block, bits)
    header += b"data" + struct.pack("<I", len(data))
    return header + data


def _little_endian(values):
    if sys.byteorder == "big":
        values = array.array(values.typecode, values)
        values.byteswap()
    return values.tobytes()
