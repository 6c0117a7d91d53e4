"""Constructed Artisan profiles for tests (a plausible roast shape, not real data)."""
import numpy as np


def roast_curve(duration_s=600.0, step_s=2.0, charge_at_s=20.0):
    """Times since recording start and a BT/ET curve with a turning point ~90 s after CHARGE."""
    t = np.arange(0.0, duration_s + charge_at_s, step_s)
    since = np.clip(t - charge_at_s, 0, None)
    bt = np.where(t < charge_at_s, 200.0, 90.0 + 0.00025 * (since - 90.0) ** 2 + 0.12 * since)
    bt = np.where((since > 0) & (since < 90), 200.0 - (200.0 - bt.min()) * np.sin(np.pi / 2 * since / 90.0), bt)
    et = bt + 40.0
    return t, bt, et


def profile(mode="C", **overrides):
    t, bt, et = roast_curve()
    if mode == "F":
        bt, et = bt * 9 / 5 + 32, et * 9 / 5 + 32
    n = len(t)
    charge = 10
    fcs = int(np.searchsorted(t, 20 + 480))
    drop = int(np.searchsorted(t, 20 + 590))
    data = {
        "mode": mode,
        "timex": [round(float(x), 3) for x in t],
        "temp1": [round(float(x), 2) for x in et],
        "temp2": [round(float(x), 2) for x in bt],
        "timeindex": [charge, int(np.searchsorted(t, 20 + 240)), fcs, 0, 0, 0, drop, 0],
        "title": "Test\\nroast",
        "beans": "Kenya Nyeri",
        "weight": [250.0, 212.0, "g"],
        "roastepoch": 1763700000,
        "roastUUID": "test-uuid",
        "samplinginterval": 2.0,
        "specialevents": [charge, charge + 30],
        "specialeventstype": [3, 0],
        "specialeventsvalue": [8.0, 4.0],
        "etypes": ["Air", "Drum", "Damper", "Burner", "--"],
    }
    assert len(data["timex"]) == n
    data.update(overrides)
    if isinstance(data.get("computed"), dict) and data["timeindex"][0] >= 0:
        # Artisan writes CHARGE's readings into every block computed with CHARGE set
        data["computed"] = {"CHARGE_ET": data["temp1"][charge], "CHARGE_BT": data["temp2"][charge]} | data["computed"]
    return data


def alog_bytes(data) -> bytes:
    return repr(data).encode("utf-8")
