"""Where did Artisan begin a TP-begun AUC that disagrees with ours? Per profile, on any folder.

    python scripts/artisan_auc_begin.py FOLDER

For every Artisan profile below FOLDER whose `computed` block begins the AUC at TP (with a fixed
base) and whose AUC differs from ours (begun where roast_metrics begins it: the recording
session's replayed live TP on the curve it read as BT, unless the file says it was saved after
being reopened or that TP is sample 0; else the profile's turning point) by more than the
agreement tolerance, prints: Artisan's AUC; ours; the begin samples (CHARGE included: a live TP
can be CHARGE itself) from which Artisan's sum,
rounded as Artisan rounds it, gives Artisan's value; the AUC from the timed TP fallback sample
(the first sample more than 2 min, and more than 2½ min, after CHARGE); where Artisan's live TP
recognition, replayed on the saved BT, accepts a TP; and whether the TP annotation comes after
DROP's in the file's annotation order. docs/telemetry.md, "Why AUC from TP disagrees", says
what each column means and what the held-out collections showed. Analysis only: it changes
nothing and stores nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from daena_pipelines.telemetry import alog, ingest, metrics, pyliteral, validate  # noqa: E402
from daena_pipelines.telemetry.quality import ARTISAN_TOLERANCES  # noqa: E402

AUC_TOLERANCE = next(tol for ours, _, tol in ARTISAN_TOLERANCES if ours == "auc_c_min")
FALLBACKS_S = (120.0, 150.0)  # Artisan 3.2 and later / 2.x (docs/telemetry.md)


def recognised_tp(timex: list, bt: list, charge: int, dry: int | None, unit: str) -> tuple[int, int] | None:
    """(sample at which Artisan's live check accepts a TP, that TP), replayed on the saved BT in
    the file's unit (`checkTPalarmtime` and the recognition in `sample_processing`); None if never."""
    lo, hi = metrics.LIVE_TP_BOUNDS[unit]  # accepted strictly between them (file unit)
    rising = False
    for k in range(charge + 8, len(bt) if dry is None else dry):
        if not rising and int(timex[k] - timex[charge]) > 20 and k >= 4:
            older = bt[k - 4]
            rising = all(older <= v for v in bt[k - 3:k + 1]) and older < bt[k]
        if rising:
            window = [(v, i) for i, v in enumerate(bt[charge:k + 1], charge) if v > 0]
            lowest = min(v for v, _ in window)
            tp = max(i for v, i in window if v == lowest)
            if lo < bt[tp] < hi:
                return k, tp
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    shown = 0
    for path in sorted(p for p in args.folder.rglob("*") if p.suffix.lower() == ".alog"):
        try:
            profile = pyliteral.loads(validate.decode_text(path.read_bytes()))
            session = alog.profile_to_session(profile)
        except (alog.InvalidSession, pyliteral.LiteralError, TypeError, KeyError):
            continue
        ev, settings = session.events, session.settings
        # Artisan's AUC as the agreement check keeps it (None when not carried)
        theirs = ingest.artisan_values(session.artisan_computed, session.roasted_weight_g, ev)["artisan_auc_c_min"]
        if (theirs is None or settings.get("auc_begin") != "TP" or settings.get("auc_base_from_event")
                or session.charge_inferred or "DROP" not in ev):
            continue
        t, charge, drop = session.time_s, ev["CHARGE"], ev["DROP"]
        running = metrics.auc_running(t, session.bt_c, float(settings["auc_base_c"]))
        tp = metrics.turning_point(session.bt_c, ev)
        live = metrics.recording_session_tp(session)
        tp = live if live and live < drop else tp  # our begin, as roast_metrics takes it
        ours = metrics.auc_span(running, tp, drop) if tp is not None else float("nan")
        if abs(ours - theirs) <= AUC_TOLERANCE:
            continue
        shown += 1

        def since(i: int) -> float:
            return float(t[i] - t[charge])

        begins = [b for b in range(charge, drop) if round(metrics.auc_span(running, b, drop)) == theirs]
        span = "none"
        if begins:
            first, last = since(begins[0]), since(begins[-1])
            span = f"{first:.0f} s" if first == last else f"{first:.0f}-{last:.0f} s"
        fallbacks = []
        for seconds in FALLBACKS_S:
            k = next((i for i in range(charge, drop) if since(i) > seconds), None)
            fallbacks.append(f"{metrics.auc_span(running, k, drop):.1f} @{since(k):.0f} s" if k is not None else "-")
        live = recognised_tp(profile["timex"], profile["temp2"], charge, ev.get("DRY_END"), session.original_unit)
        live_text = f"TP {since(live[1]):.0f} s (seen {since(live[0]):.0f} s)" if live else "never"
        keys = [a[0] for a in profile.get("anno_positions") or [] if isinstance(a, list) and a]
        after_drop = -1 in keys and 6 in keys and keys.index(-1) > keys.index(6)
        print(f"{str(path.relative_to(args.folder))[:56]:56s} v{profile.get('version')}  Artisan {theirs:.0f}  "
              f"ours {ours:.1f} (from {since(tp):.0f} s)  reproducing begins {span}  fallback 2 min {fallbacks[0]}, "
              f"2.5 min {fallbacks[1]}  recognition {live_text}  TP annotation {'after DROP' if after_drop else 'not after DROP'}")
    print(f"{shown} profiles whose TP-begun AUC disagrees with ours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
