"""CSV input for real files: a time column that must be regular, and empty cells that may be filled.

    datasets:
      load: {source: csv, path: data/external/load.csv, column: kW, time_column: hour, missing: interpolate}

Every refusal is one line naming the file and the row (row 1 is the header).
"""

import json
import math

import numpy as np
import pytest

from sinernn.core import data
from sinernn.core.config_data import CsvSource, SineSource
from sinernn.core.csv_series import read_csv_series
from sinernn.core.errors import DataError


def _read(tmp_path, text, **options):
    """read_csv_series on `text` written to data/external/series.csv, column 'value'."""
    path = tmp_path / "data/external/series.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    cfg = CsvSource(source="csv", path="data/external/series.csv", column="value", **options)
    return read_csv_series(path, cfg)


def _refusal(tmp_path, text, **options) -> str:
    with pytest.raises(DataError) as caught:
        _read(tmp_path, text, **options)
    message = str(caught.value)
    assert "\n" not in message and "series.csv" in message
    return message


# ---- time column ----------------------------------------------------------------------------


def test_a_numeric_time_column_gives_its_span_and_step(tmp_path):
    values, info = _read(tmp_path, "t,value\n0.1,5\n0.2,6\n0.3,7\n", time_column="t")
    np.testing.assert_array_equal(values, [5.0, 6.0, 7.0])
    # 0.3 - 0.2 is 0.09999999999999998: float steps are equal within a relative 1e-9.
    assert info == {
        "n_filled": 0, "missing": "error", "time_column": "t",
        "time_start": "0.1", "time_end": "0.3", "time_step": "0.1",
    }


def test_weekly_iso_dates_are_a_regular_time_column(tmp_path):
    text = "week,value\n2024-01-01,1\n2024-01-08,2\n2024-01-15,3\n2024-01-22,4\n"
    values, info = _read(tmp_path, text, time_column="week")
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0, 4.0])
    assert (info["time_start"], info["time_end"], info["time_step"]) == ("2024-01-01", "2024-01-22", "7 days, 0:00:00")


@pytest.mark.parametrize(
    "stamps, message",
    [
        (["0", "2", "1", "3"], "row 4: time stamp '1' in column 't' is not increasing (unsorted)"),
        (["0", "1", "1", "2"], "row 4: duplicated time stamp '1'"),
        (["0", "1", "2", "4"], "row 5: irregular step (got 2.0, expected 1.0)"),
        (["2024-01-01", "2024-01-08", "2024-01-16"], "row 4: irregular step (got 8 days, 0:00:00, expected 7 days, 0:00:00)"),
        (["0", "1", "yesterday", "3"], "row 4: unparseable time stamp 'yesterday'"),
        (["2024-01-01", "7", "2024-01-15"], "row 3: unparseable time stamp '7'"),  # one kind per column
        (["0", "", "2", "3"], "row 3: missing time stamp in column 't'"),  # stamps are never filled
    ],
    ids=["unsorted", "duplicated", "irregular", "irregular-dates", "unparseable", "mixed-kinds", "empty"],
)
def test_a_bad_time_column_is_one_line_naming_the_first_bad_row(tmp_path, stamps, message):
    text = "t,value\n" + "".join(f"{stamp},{i}\n" for i, stamp in enumerate(stamps))
    assert message in _refusal(tmp_path, text, time_column="t", missing="interpolate")


# ---- empty value cells ----------------------------------------------------------------------


def test_an_empty_value_is_refused_by_default_naming_its_row_and_the_fix(tmp_path):
    message = _refusal(tmp_path, "t,value\n0,1\n1,\n2,3\n")
    assert "row 3: missing value in column 'value'" in message and "missing: interpolate" in message


def test_interpolate_draws_a_straight_line_across_each_gap(tmp_path):
    values, info = _read(tmp_path, "t,value\n0,1\n1,\n2,\n3,4\n4,6\n5,\n6,10\n", missing="interpolate")
    np.testing.assert_allclose(values, [1, 2, 3, 4, 6, 8, 10])  # 1 _ _ 4 -> 2, 3; 6 _ 10 -> 8
    assert info["n_filled"] == 3


def test_ffill_repeats_the_last_observed_value_even_at_the_end(tmp_path):
    values, info = _read(tmp_path, "t,value\n0,1\n1,\n2,\n3,4\n4,\n", missing="ffill")
    np.testing.assert_array_equal(values, [1, 1, 1, 4, 4])
    assert info["n_filled"] == 3


@pytest.mark.parametrize("missing", ["interpolate", "ffill"])
def test_a_leading_gap_cannot_be_filled(tmp_path, missing):
    message = _refusal(tmp_path, "t,value\n0,\n1,\n2,3\n", missing=missing)
    assert "row 2: missing value in column 'value' at the start" in message


def test_a_trailing_gap_cannot_be_interpolated(tmp_path):
    message = _refusal(tmp_path, "t,value\n0,1\n1,2\n2,\n3,\n", missing="interpolate")
    assert "row 4: missing value in column 'value' at the end" in message and "ffill" in message


@pytest.mark.parametrize("missing", ["interpolate", "ffill"])
@pytest.mark.parametrize("cell, message", [("abc", "row 3: non-numeric value 'abc'"), ("nan", "row 3: value 'nan' is not finite")])
def test_a_bad_cell_is_never_filled(tmp_path, missing, cell, message):
    assert message in _refusal(tmp_path, f"t,value\n0,1\n1,{cell}\n2,3\n", missing=missing)


# ---- what the manifest records --------------------------------------------------------------


def test_the_manifest_records_filled_cells_and_the_time_span_of_a_csv_only(tmp_path):
    values = [f"{math.sin(i / 5):.6f}" for i in range(400)]
    values[10] = values[11] = ""  # two empty cells in train
    text = "hour,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))
    (tmp_path / "data/external").mkdir(parents=True)
    (tmp_path / "data/external/series.csv").write_text(text)
    cfg = CsvSource(source="csv", path="data/external/series.csv", column="value", time_column="hour", missing="ffill")
    dataset = data.generate("mine", cfg, 0, window=16, project_root=tmp_path)
    assert dataset.splits["train"].observed[0, 11] == float(values[9])  # the filled value reached the split

    manifest = data.save(dataset, cfg, 0, tmp_path / "mine.npz", tmp_path / "mine.json")
    written = json.loads((tmp_path / "mine.json").read_text())
    assert manifest["csv"] == written["csv"] == {
        "n_filled": 2, "missing": "ffill", "time_column": "hour",
        "time_start": "0", "time_end": "399", "time_step": "1.0",
    }

    sine = SineSource(source="sine", n_train=200, n_val=50, n_test=1100)
    sine_manifest = data.save(data.generate("clean", sine, 0, 16), sine, 0, tmp_path / "clean.npz", tmp_path / "clean.json")
    assert "csv" not in sine_manifest and "csv" not in json.loads((tmp_path / "clean.json").read_text())


def test_a_blank_line_in_a_one_column_file_is_a_gap_not_a_row_dropped(tmp_path):
    # csv.DictReader skips blank lines: the gap vanished and 4 moved one step earlier in time
    values, info = _read(tmp_path, "value\n1\n\n\n4\n\n", missing="interpolate")
    np.testing.assert_array_equal(values, [1, 2, 3, 4])
    assert info["n_filled"] == 2
    with pytest.raises(DataError, match=r"row 3: missing value"):
        _read(tmp_path, "value\n1\n\n4\n")


@pytest.mark.parametrize("stamps, step", [
    (["1990-01-01", "1990-02-01", "1990-03-01", "1990-04-01"], "1 month"),  # 31, 28, 31 days
    (["1999-07-01", "2000-07-01", "2001-07-01"], "12 months"),  # 366 and 365 days
    (["2020-01-15T12:00", "2020-04-15T12:00", "2020-07-15T12:00"], "3 months"),
])
def test_monthly_quarterly_and_yearly_dates_are_regular(tmp_path, stamps, step):
    text = "when,value\n" + "".join(f"{stamp},{i}\n" for i, stamp in enumerate(stamps))
    _, info = _read(tmp_path, text, time_column="when")
    assert info["time_step"] == step


def test_a_date_off_the_monthly_calendar_is_an_irregular_step(tmp_path):
    text = "when,value\n1990-01-01,1\n1990-02-01,2\n1990-03-02,3\n"
    assert "row 4: irregular step" in _refusal(tmp_path, text, time_column="when")


def test_months_written_without_a_day_are_monthly_stamps(tmp_path):
    _, info = _read(tmp_path, "month,value\n1958-03,1\n1958-04,2\n1958-05,3\n", time_column="month")
    assert (info["time_step"], info["time_start"]) == ("1 month", "1958-03")
