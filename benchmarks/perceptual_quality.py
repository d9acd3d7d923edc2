"""Do the offline perceptual-quality figures order sources as a listener would? DNSMOS (OVRL,
SIG, BAK, P.808) and speaker similarity, side by side in one run, for:

- piper (en_US-joe-medium) and espeak-ng (en-us) synthesizing the same sentences of the TTS set,
- real recorded speech (../shared/data/realspeech-dev, when it is there: LibriVox and LJ Speech),
- noise: the generated non-speech fixtures with sound in them and white noise.

    python benchmarks/perceptual_quality.py [--texts 8] [--real 8]

Speaker similarity is to the centroid of the piper-voiced speech fixtures (the joe voice): piper
should be near it, everything else far. Prints a table (mean [95% bootstrap CI], n) and the
ordering checks; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "data" / "realspeech-dev"


def synthesized(model: str, texts: list[str]) -> list[tuple[np.ndarray, int]]:
    from pytest_speechlab import ModelPool, Runner, build_registry, make_plugin_manager
    from pytest_speechlab.tasks.tts import TextItem

    loaded = ModelPool().get(build_registry(make_plugin_manager()).model(model))
    calls = Runner().run(loaded, [TextItem(f"t{i}", text) for i, text in enumerate(texts)])
    return [(c.invocation.value.samples, c.invocation.value.sample_rate) for c in calls]


def files(paths) -> list[tuple[np.ndarray, int]]:
    out = []
    for path in paths:
        x, rate = sf.read(path, dtype="float32", always_2d=True)
        out.append((x.mean(axis=1), rate))
    return out


def main() -> None:
    from pytest_speechlab.metrics.quality import centroid, mean_ci, mos, similarity, speaker_embedding

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=8)
    parser.add_argument("--real", type=int, default=8)
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in (REPO / "fixtures" / "tts" / "texts.jsonl").read_text().splitlines()
             if line.strip() and not line.startswith("#")][: args.texts]
    groups = {"piper": synthesized("piper/en_US-joe-medium", texts),
              "espeak-ng": synthesized("espeak-ng/en-us", texts)}
    if REAL.is_dir():
        entries = [json.loads(line) for line in (REAL / "manifest.jsonl").read_text().splitlines() if line.strip()]
        groups["real speech"] = files([REAL / e["audio"] for e in entries if e.get("kind") == "speech"][: args.real])
    noise = [p for p in sorted((REPO / "fixtures" / "nonspeech").glob("*noise*.flac"))]
    rng = np.random.default_rng(0)
    groups["noise"] = files(noise) + [((rng.standard_normal(16000 * 5) * 0.1).astype(np.float32), 16000)]
    voice = centroid([speaker_embedding(x, r) for x, r in files(sorted((REPO / "fixtures" / "speech").glob("*.flac"))[:20])])

    header = f"{'source':12s} {'n':>3s}  " + "  ".join(f"{h:>17s}" for h in ("OVRL", "SIG", "BAK", "P.808", "speaker sim"))
    print(header)
    means = {}
    for name, clips in groups.items():
        scores = [s for s in (mos(x, r) for x, r in clips) if s is not None]
        sims = [v for v in (similarity(speaker_embedding(x, r), voice) for x, r in clips) if v is not None]
        cells = []
        for values in ([s["ovrl"] for s in scores], [s["sig"] for s in scores], [s["bak"] for s in scores],
                       [s["p808"] for s in scores], sims):
            ci = mean_ci(values)
            cells.append(f"{np.mean(values):.2f} [{ci[0]:.2f}-{ci[1]:.2f}]" if values else "-")
        means[name] = (float(np.mean([s["ovrl"] for s in scores])), float(np.mean(sims)) if sims else None)
        print(f"{name:12s} {len(clips):3d}  " + "  ".join(f"{c:>17s}" for c in cells))
    order = sorted(means, key=lambda k: -means[k][0])
    print("\nordered by OVRL: " + " > ".join(order))
    print("speaker similarity to the joe voice: " + ", ".join(f"{k} {v[1]:.2f}" for k, v in means.items() if v[1] is not None))
    print(f"noise lowest OVRL: {order[-1] == 'noise'}; espeak-ng below piper: {means['espeak-ng'][0] < means['piper'][0]}; "
          f"piper closest to its own voice: {max((v[1] or -1, k) for k, v in means.items())[1] == 'piper'}")


if __name__ == "__main__":
    main()
