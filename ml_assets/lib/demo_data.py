r"""A seeded generator of a realistic customer-churn dataset, written as landing batches.

The demo data stands in for a real upstream system: each call to `generate_batch` returns
one day of customers with a mix of numeric and categorical features, a few missing values
and an imbalanced binary label (about 20% churners). The label follows a logistic model of
the features plus noise, so a good classifier reaches a ROC AUC of roughly 0.80-0.88 while
a dummy one stays at 0.5.

Three knobs simulate a changing world without making the data invalid:

* `covariate_drift` (0 = none, 1 = strong) moves the feature distributions (shorter tenure,
  higher charges, more support calls, more month-to-month contracts) but keeps every value
  inside its plausible range, so a validation suite inferred from undrifted data still
  passes. The label model itself does not change (a pure covariate shift).
* `label_shift` raises the churn prior (it adds to the logistic intercept).
* `concept_drift` (0 = none, 1 = reversed) changes the relation between the features and the
  label: the feature effects are scaled by `1 - 2 * concept_drift` around their mean, so at 0.5
  the features say nothing about churn and at 1 they say the opposite. The features themselves
  do not move: a model trained before scores badly on such a batch, which only live performance
  (not drift monitoring) can see.

`corrupt_batch` produces the invalid batches the validation checks must block, and
`write_demo_batches` drops batches into a landing folder, never overwriting one.

Command line (prints the files written)::

    python -m ml_assets.lib.demo_data --landing data/landing --batches 1 --rows 800 \
        --seed 11 [--drift 1.0] [--label-shift 0.5] [--concept-drift 1.0] [--bad wrong_dtype] \
        [--format parquet] [--start-date 2026-12-01]

This module is pure logic: it never imports Dagster.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "churned"
ID_COLUMN = "customer_id"

CONTRACTS = ("month_to_month", "one_year", "two_year")
PAYMENT_METHODS = ("electronic_check", "mailed_check", "bank_transfer", "credit_card")
INTERNET_SERVICES = ("dsl", "fiber_optic", "none")
REGIONS = ("north", "south", "east", "west")

COLUMNS = (
    ID_COLUMN,
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "age",
    "support_calls",
    "contract",
    "payment_method",
    "internet_service",
    "region",
    TARGET,
)

BAD_BATCH_KINDS = ("null_required", "wrong_dtype", "unknown_category", "one_class_target")
FORMATS = ("csv", "parquet")

TENURE_RANGE = (0, 72)
MONTHLY_CHARGES_RANGE = (18.0, 120.0)
AGE_RANGE = (18, 90)
SUPPORT_CALLS_RANGE = (0, 15)

TOTAL_CHARGES_MISSING = 0.03
INTERNET_SERVICE_MISSING = 0.04

# Logistic label model. The intercept is tuned so that undrifted data has ~20% churners.
_INTERCEPT = -2.4
_COEF_TENURE = -0.06  # per month
_COEF_MONTH_TO_MONTH = 1.1
_COEF_TWO_YEAR = -1.1
_COEF_CHARGES = 0.024  # per currency unit above 70
_COEF_SUPPORT_CALLS = 0.42
_COEF_ELECTRONIC_CHECK = 0.7
_COEF_FIBER = 0.55
_COEF_SENIOR = 0.25  # age >= 65
_COEF_REGION = {"north": 0.0, "south": 0.1, "east": -0.05, "west": 0.05}
_LOGIT_NOISE_SD = 0.4
_LABEL_SHIFT_SCALE = 1.5  # label_shift=1 adds 1.5 to the log-odds (~20% -> ~38%)


def generate_batch(
    *,
    n_rows: int,
    seed: int,
    batch_date: datetime.date,
    covariate_drift: float = 0.0,
    label_shift: float = 0.0,
    concept_drift: float = 0.0,
) -> pd.DataFrame:
    """Generate one batch of synthetic churn data.

    The result is fully determined by the arguments: the random stream is seeded from
    `seed` and `batch_date`, and customer ids embed both, so batches with a different seed
    or date never share an id.

    Args:
        n_rows: Number of customers (rows); must be positive.
        seed: Random seed.
        batch_date: The day the batch represents; part of the seed and of the ids.
        covariate_drift: 0 for none, 1 for strong; shifts feature distributions within
            their plausible ranges. Values in [0, 2] are accepted.
        label_shift: Added (scaled) to the churn log-odds; 0 keeps the ~20% prior, 1 moves
            it to roughly 38%. Values in [-2, 2] are accepted.
        concept_drift: 0 keeps the label model; 1 reverses every feature effect. In [0, 1].

    Returns:
        A frame with the columns in `COLUMNS`: `customer_id` (str), `tenure_months`,
        `age`, `support_calls` (int), `monthly_charges`, `total_charges` (float, ~3%
        missing), `contract`, `payment_method`, `internet_service` (~4% missing),
        `region` (str) and `churned` (int 0/1).

    Raises:
        ValueError: If `n_rows` is not positive or a shift is outside its accepted range.
    """
    if n_rows <= 0:
        raise ValueError(f"n_rows={n_rows}: must be a positive number of rows")
    if not 0.0 <= covariate_drift <= 2.0:
        raise ValueError(f"covariate_drift={covariate_drift}: must be in [0, 2] (0 = none, 1 = strong)")
    if not -2.0 <= label_shift <= 2.0:
        raise ValueError(f"label_shift={label_shift}: must be in [-2, 2] (0 keeps the ~20% churn prior)")
    if not 0.0 <= concept_drift <= 1.0:
        raise ValueError(f"concept_drift={concept_drift}: must be in [0, 1] (1 reverses the feature effects)")

    rng = np.random.default_rng([_seed_entropy(seed), batch_date.toordinal()])
    d = float(covariate_drift)

    # Contract mix: drift moves customers towards month-to-month.
    p_contract = np.array([0.52 + 0.18 * d, 0.26 - 0.08 * d, 0.22 - 0.10 * d])
    contract = rng.choice(np.array(CONTRACTS), size=n_rows, p=p_contract / p_contract.sum())
    is_mtm = contract == "month_to_month"
    is_two_year = contract == "two_year"

    # Tenure: longer contracts go with longer tenure; drift brings in newer customers.
    tenure_scale = np.select([is_mtm, is_two_year], [14.0, 48.0], default=32.0)
    tenure_scale = tenure_scale * (1.0 - 0.35 * min(d, 1.5))
    tenure = np.clip(np.round(rng.gamma(1.6, tenure_scale / 1.6)), *TENURE_RANGE).astype(np.int64)

    internet = rng.choice(np.array(INTERNET_SERVICES), size=n_rows, p=[0.36, 0.44, 0.20])
    is_fiber = internet == "fiber_optic"
    is_dsl = internet == "dsl"
    base_charges = np.select([is_fiber, is_dsl], [84.0, 56.0], default=24.0)
    charges_sd = np.select([is_fiber, is_dsl], [10.0, 8.0], default=2.5)
    monthly = base_charges + rng.normal(0.0, 1.0, size=n_rows) * charges_sd + 12.0 * d
    monthly = np.round(np.clip(monthly, *MONTHLY_CHARGES_RANGE), 2)

    # Total charges: roughly tenure x monthly, with price changes along the way.
    months_billed = np.maximum(tenure, 1)
    total = months_billed * monthly * rng.normal(1.0, 0.06, size=n_rows)
    total = np.round(np.maximum(total, monthly), 2)

    age = np.clip(np.round(rng.normal(46.0, 15.0, size=n_rows)), *AGE_RANGE).astype(np.int64)

    call_rate = 1.1 + 0.9 * is_fiber + 0.6 * is_mtm + 0.8 * d
    support_calls = np.clip(rng.poisson(call_rate), *SUPPORT_CALLS_RANGE).astype(np.int64)

    payment = rng.choice(np.array(PAYMENT_METHODS), size=n_rows, p=[0.34, 0.20, 0.22, 0.24])
    region = rng.choice(np.array(REGIONS), size=n_rows, p=[0.27, 0.25, 0.26, 0.22])

    effects = (
        _COEF_TENURE * tenure
        + _COEF_MONTH_TO_MONTH * is_mtm
        + _COEF_TWO_YEAR * is_two_year
        + _COEF_CHARGES * (monthly - 70.0)
        + _COEF_SUPPORT_CALLS * support_calls
        + _COEF_ELECTRONIC_CHECK * (payment == "electronic_check")
        + _COEF_FIBER * is_fiber
        + _COEF_SENIOR * (age >= 65)
        + np.array([_COEF_REGION[r] for r in region])
    )
    effects = effects.mean() + (1.0 - 2.0 * concept_drift) * (effects - effects.mean())
    logit = _INTERCEPT + _LABEL_SHIFT_SCALE * label_shift + effects + rng.normal(0.0, _LOGIT_NOISE_SD, size=n_rows)
    churned = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    # Missing values are drawn after the label, as if lost on the way to the warehouse.
    total_out = total.astype(float)
    total_out[rng.random(n_rows) < TOTAL_CHARGES_MISSING] = np.nan
    internet_out = internet.astype(object)
    internet_out[rng.random(n_rows) < INTERNET_SERVICE_MISSING] = None

    return pd.DataFrame(
        {
            ID_COLUMN: _customer_ids(n_rows, seed=seed, batch_date=batch_date),
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total_out,
            "age": age,
            "support_calls": support_calls,
            "contract": contract.astype(object),
            "payment_method": payment.astype(object),
            "internet_service": internet_out,
            "region": region.astype(object),
            TARGET: churned,
        }
    )


def corrupt_batch(df: pd.DataFrame, *, kind: str, seed: int) -> pd.DataFrame:
    """Return a copy of a demo batch broken in one of the ways validation must block.

    Args:
        df: A batch from `generate_batch` (its columns are expected).
        kind: One of `BAD_BATCH_KINDS`:
            `null_required` blanks 40% of `monthly_charges` and 5% of the target;
            `wrong_dtype` turns `monthly_charges` into strings such as "12.5 USD";
            `unknown_category` puts "lifetime", outside the domain, into 15% of `contract`;
            `one_class_target` labels every row 0, as a broken labelling job would (a batch without
            the target column is not broken: it is an unlabelled batch).
        seed: Seed for which rows are corrupted.

    Returns:
        The corrupted copy; `df` is not modified.

    Raises:
        ValueError: If `kind` is unknown or `df` lacks the column the kind corrupts.
    """
    if kind not in BAD_BATCH_KINDS:
        raise ValueError(f"unknown bad batch kind {kind!r}: use one of {', '.join(BAD_BATCH_KINDS)}")
    needed = {
        "null_required": ("monthly_charges", TARGET),
        "wrong_dtype": ("monthly_charges",),
        "unknown_category": ("contract",),
        "one_class_target": (TARGET,),
    }[kind]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(
            f"corrupt_batch(kind={kind!r}): column(s) {', '.join(f'`{c}`' for c in missing)} "
            "not in the frame; pass a batch made by generate_batch"
        )

    rng = np.random.default_rng([_seed_entropy(seed), BAD_BATCH_KINDS.index(kind)])
    out = df.copy()
    n = len(out)
    if kind == "null_required":
        out["monthly_charges"] = out["monthly_charges"].astype(float)
        out.loc[rng.random(n) < 0.40, "monthly_charges"] = np.nan
        target = out[TARGET].astype("Int64")
        target[rng.random(n) < 0.05] = pd.NA
        out[TARGET] = target
    elif kind == "wrong_dtype":
        out["monthly_charges"] = ["" if pd.isna(v) else f"{float(v):.1f} USD" for v in out["monthly_charges"]]
        out["monthly_charges"] = out["monthly_charges"].astype(object)
    elif kind == "unknown_category":
        out["contract"] = out["contract"].astype(object)
        out.loc[rng.random(n) < 0.15, "contract"] = "lifetime"
    else:  # one_class_target
        out[TARGET] = 0
    return out


def write_demo_batches(
    landing_dir: Path,
    *,
    batches: int,
    rows_per_batch: int,
    seed: int,
    start_date: datetime.date,
    covariate_drift: float = 0.0,
    label_shift: float = 0.0,
    concept_drift: float = 0.0,
    bad: str | None = None,
    fmt: str = "csv",
) -> list[Path]:
    """Write demo batches into a landing folder, one file per day, never overwriting.

    Batch `i` is generated with a seed derived from `(seed, i)` and dated `start_date + i`
    days; if a batch for that date already exists (in any format) the next free date is
    used instead, so repeated calls keep adding new batches. Each file is written under a
    temporary name and renamed into place, so a sensor never sees half a file.

    Args:
        landing_dir: Folder to write into; created if missing.
        batches: Number of batches to write (>= 1).
        rows_per_batch: Rows per batch (>= 1).
        seed: Base seed.
        start_date: Date of the first batch.
        covariate_drift: Passed to `generate_batch`.
        label_shift: Passed to `generate_batch`.
        concept_drift: Passed to `generate_batch`.
        bad: If set, one of `BAD_BATCH_KINDS`, applied to every batch written.
        fmt: "csv" or "parquet".

    Returns:
        The paths written, in date order.

    Raises:
        ValueError: If `batches`, `bad` or `fmt` is invalid.
    """
    if batches < 1:  # `rows_per_batch` and `bad` are checked by `generate_batch` and `corrupt_batch`
        raise ValueError(f"batches={batches}: must be at least 1")
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r}: use one of {', '.join(FORMATS)}")

    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    day = start_date
    for index in range(batches):
        while any((landing_dir / f"batch_{day.isoformat()}.{ext}").exists() for ext in FORMATS):
            day += datetime.timedelta(days=1)
        batch_seed = _derive_seed(seed, index)
        df = generate_batch(
            n_rows=rows_per_batch,
            seed=batch_seed,
            batch_date=day,
            covariate_drift=covariate_drift,
            label_shift=label_shift,
            concept_drift=concept_drift,
        )
        if bad is not None:
            df = corrupt_batch(df, kind=bad, seed=batch_seed)
        path = landing_dir / f"batch_{day.isoformat()}.{fmt}"
        tmp = path.with_name(f".{path.name}.tmp")  # hidden, then renamed into place
        try:
            (df.to_csv if fmt == "csv" else df.to_parquet)(tmp, index=False)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
        day += datetime.timedelta(days=1)
    return written


def main(argv: list[str] | None = None) -> int:
    """Run the command line: write demo batches and print their paths.

    Args:
        argv: Arguments without the program name; `None` reads `sys.argv`.

    Returns:
        The process exit code (0 on success).
    """
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.lib.demo_data",
        description="Write seeded synthetic churn batches into a landing folder.",
    )
    parser.add_argument("--landing", type=Path, default=Path("data/landing"))
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--rows", type=int, default=800, help="rows per batch")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--drift", type=float, default=0.0, help="covariate drift, 0..1")
    parser.add_argument("--label-shift", type=float, default=0.0)
    parser.add_argument("--concept-drift", type=float, default=0.0, help="0..1: 1 reverses how features drive churn")
    parser.add_argument("--bad", choices=BAD_BATCH_KINDS)
    parser.add_argument("--format", choices=FORMATS, default="csv", dest="fmt")
    parser.add_argument("--start-date", type=datetime.date.fromisoformat, help="first batch's day (default: today)")
    args = parser.parse_args(argv)
    try:
        paths = write_demo_batches(
            args.landing,
            batches=args.batches,
            rows_per_batch=args.rows,
            seed=args.seed,
            start_date=args.start_date or datetime.date.today(),
            covariate_drift=args.drift,
            label_shift=args.label_shift,
            concept_drift=args.concept_drift,
            bad=args.bad,
            fmt=args.fmt,
        )
    except ValueError as exc:
        parser.error(str(exc))
    for path in paths:
        print(path)
    return 0


def _seed_entropy(seed: int) -> int:
    """Map any int (negative included) to a non-negative seed for `SeedSequence`."""
    return seed if seed >= 0 else (1 << 64) + seed


def _derive_seed(seed: int, index: int) -> int:
    """Derive a 63-bit seed for batch `index` of a run seeded with `seed`."""
    state = np.random.SeedSequence([_seed_entropy(seed), index]).generate_state(2)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _customer_ids(n_rows: int, *, seed: int, batch_date: datetime.date) -> np.ndarray:
    """Build ids such as `C20261101-3f9a2c-00017`: date, a tag of (seed, date), row number."""
    tag = hashlib.sha256(f"{seed}:{batch_date.isoformat()}".encode()).hexdigest()[:6]
    prefix = f"C{batch_date:%Y%m%d}-{tag}-"
    return np.array([f"{prefix}{i:05d}" for i in range(n_rows)], dtype=object)


if __name__ == "__main__":
    raise SystemExit(main())
