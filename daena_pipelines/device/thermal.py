"""Lumped thermal model of a Bullet R1 drum with a batch of beans (pure, deterministic given a seed).

Two heat capacities exchange heat: the drum with the air inside it (heated by the induction
coil, cooled by the exhaust fan and by losses to the room) and the bean mass (heated by the
drum, cooled by evaporating its water, and by the first-crack endotherm). Sensors see these
through first-order lags plus seeded Gaussian noise. Parameters and equations are explained in
docs/device.md; they were tuned so a 250 g batch behaves like published R1 roasts, not fitted to
any measured roast.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WATER_CP = 4186.0  # J/(kg·K)
WATER_LATENT = 2.26e6  # J/kg


@dataclass(frozen=True)
class ThermalParams:
    ambient_c: float = 22.0
    heater_max_w: float = 700.0  # power delivered to the drum at the top heater level
    heater_levels: int = 9  # the top heater level (R1 9, R2 14)
    drum_capacity_j_per_k: float = 800.0  # drum + air + nearby steel
    room_loss_w_per_k: float = 1.5
    fan_loss_w_per_k_per_level: float = 0.18  # airflow carries heat out of the drum
    drum_bean_w_per_k: float = 1.1  # drum/air -> bean heat transfer for 250 g at drum level 5
    dry_bean_cp: float = 1250.0  # J/(kg·K)
    initial_moisture: float = 0.105  # water mass fraction of green beans
    evaporation_per_s: float = 0.0007  # fraction of remaining water lost per second at full rate
    evaporation_onset_c: float = 95.0
    first_crack_c: float = 188.0  # bean temperature where the first-crack endotherm begins
    first_crack_energy_j_per_kg: float = 8000.0
    first_crack_rate_per_s: float = 0.02
    probe_tau_s: float = 20.0  # bean thermocouple response time
    probe_bean_weight: float = 0.87  # share of the probe's surroundings that is beans when loaded
    drum_probe_tau_s: float = 4.0
    exhaust_tau_s: float = 20.0
    noise_c: float = 0.12


@dataclass
class ThermalState:
    drum_c: float
    bean_c: float
    water_kg: float = 0.0
    dry_mass_kg: float = 0.0
    crack_energy_left_j: float = 0.0
    probe_c: float = 0.0
    drum_probe_c: float = 0.0
    exhaust_c: float = 0.0


class ThermalModel:
    def __init__(self, params: ThermalParams | None = None, seed: int = 0):
        self.p = params or ThermalParams()
        self.rng = np.random.default_rng(seed)
        amb = self.p.ambient_c
        self.s = ThermalState(drum_c=amb, bean_c=amb, probe_c=amb, drum_probe_c=amb, exhaust_c=amb)

    @property
    def beans_loaded(self) -> bool:
        return self.s.dry_mass_kg > 0

    def charge(self, batch_g: float, bean_temp_c: float | None = None) -> None:
        """Beans drop into the drum at room temperature."""
        mass = batch_g / 1000.0
        self.s.water_kg = mass * self.p.initial_moisture
        self.s.dry_mass_kg = mass - self.s.water_kg
        self.s.bean_c = self.p.ambient_c if bean_temp_c is None else bean_temp_c
        self.s.crack_energy_left_j = self.p.first_crack_energy_j_per_kg * mass

    def drop(self) -> float:
        """Beans leave the drum; returns the roasted weight in grams."""
        weight_g = (self.s.dry_mass_kg + self.s.water_kg) * 1000.0
        self.s.dry_mass_kg = self.s.water_kg = 0.0
        return weight_g

    def step(self, dt: float, heater: int, fan: int, drum: int) -> None:
        p, s = self.p, self.s
        q_heater = p.heater_max_w * heater / p.heater_levels
        q_loss = (p.room_loss_w_per_k + p.fan_loss_w_per_k_per_level * fan) * (s.drum_c - p.ambient_c)
        q_beans = 0.0
        if self.beans_loaded:
            mass = s.dry_mass_kg + s.water_kg
            # contact area grows sub-linearly with batch size; faster drum tumbles more surface
            transfer = p.drum_bean_w_per_k * (mass / 0.25) ** 0.8 * (0.85 + 0.03 * drum)
            q_beans = transfer * (s.drum_c - s.bean_c)
            evaporation = 0.0
            if s.bean_c > p.evaporation_onset_c:
                ramp = min(1.0, (s.bean_c - p.evaporation_onset_c) / 100.0)
                evaporation = p.evaporation_per_s * ramp * s.water_kg
            q_crack = 0.0
            if s.bean_c > p.first_crack_c and s.crack_energy_left_j > 0:
                q_crack = p.first_crack_rate_per_s * s.crack_energy_left_j
                s.crack_energy_left_j -= q_crack * dt
            heat_capacity = s.dry_mass_kg * p.dry_bean_cp + s.water_kg * WATER_CP
            s.bean_c += dt * (q_beans - evaporation * WATER_LATENT - q_crack) / heat_capacity
            s.water_kg -= evaporation * dt
            probe_target = p.probe_bean_weight * s.bean_c + (1 - p.probe_bean_weight) * s.drum_c
        else:
            probe_target = s.drum_c * 0.95 + p.ambient_c * 0.05
        s.drum_c += dt * (q_heater - q_loss - q_beans) / p.drum_capacity_j_per_k
        s.probe_c += (probe_target - s.probe_c) * min(1.0, dt / p.probe_tau_s)
        s.drum_probe_c += (s.drum_c - s.drum_probe_c) * min(1.0, dt / p.drum_probe_tau_s)
        exhaust_target = p.ambient_c + 0.6 * (s.drum_c - p.ambient_c)
        s.exhaust_c += (exhaust_target - s.exhaust_c) * min(1.0, dt / p.exhaust_tau_s)

    def noisy(self, value: float) -> float:
        return value + float(self.rng.normal(0.0, self.p.noise_c))
