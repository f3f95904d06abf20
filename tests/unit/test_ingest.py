"""The one strict reader: every bad input gets an error naming file, row and column, never the value;
unusual input (bulleted notes, leading '+', formula-looking cells, accents) is data."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from securepipe.errors import InputError
from securepipe.ingest import ReadLimits, is_formula, iter_frames, neutralize_formulas, read_all

SECRET = "Zelda-Canary-4417"  # a value that must never appear in any message

GOOD = f"id,name,score\n1,{SECRET},3\n2,Bob,4\n"
BAD_CSV = [
    # (file bytes, expected row, expected column, reason fragment)
    (b"", None, None, "empty"),
    (b"id,name\n", None, None, "no rows"),
    (f"id,name,score\n1,{SECRET}\n".encode(), 1, None, "fields"),
    (f"id,name,score\n1,{SECRET},3,9\n".encode(), 1, None, "fields"),
    (f"id,name,score\n1,ok,3\n2,{SECRET}\xff,3\n".encode("latin-1"), 2, None, "UTF-8"),
    (f"id,name,score\n1,{SECRET}\x00,3\n".encode(), 1, None, "NUL"),
    (f"id,name,score\n1,{'x' * ((1 << 20) + 1)},3\n".encode(), 1, None, "larger"),
    (f"id,name,score\n1,ok,3\n\n2,\"{SECRET},3\n".encode(), 2, None, "malformed"),
    (f"id,id,score\n1,{SECRET},3\n".encode(), 0, "id", "duplicate"),
    (f"id,,score\n1,{SECRET},3\n".encode(), 0, None, "empty"),
]


@pytest.mark.parametrize("data,row,column,reason", BAD_CSV)
def test_bad_csv_names_place_not_value(tmp_path, data, row, column, reason):
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    with pytest.raises(InputError) as caught:
        read_all(path)
    message = str(caught.value)
    assert "input.csv" in message and reason in message
    assert SECRET not in message and "x" * 100 not in message
    assert not (row is None and caught.value.row is not None)
    assert caught.value.row == row
    if column:
        assert caught.value.column == column
    assert path.read_bytes() == data  # the input is kept untouched


def test_good_csv_streams_in_chunks_with_row_numbers(tmp_path):
    path = tmp_path / "input.csv"
    path.write_text("\ufeff" + "id,zip,phone\n" + "".join(f"{i},0{i:04d},+1 212-555-{i:04d}\n" for i in range(25)))
    frames = list(iter_frames(path, limits=ReadLimits(chunk_rows=10)))
    assert [len(f) for f in frames] == [10, 10, 5]
    assert list(frames[1].index[:2]) == [10, 11]
    assert list(frames[0].columns) == ["id", "zip", "phone"]  # BOM stripped
    assert frames[0]["zip"].iloc[1] == "00001"  # text stays text: no leading zero lost


def test_missing_required_column(tmp_path):
    path = tmp_path / "input.csv"
    path.write_text(GOOD)
    with pytest.raises(InputError, match="required column") as caught:
        read_all(path, required_columns=["label"])
    assert caught.value.column == "label"


def test_unsupported_extension(tmp_path):
    with pytest.raises(InputError, match="unsupported"):
        read_all(tmp_path / "input.xlsx")


def test_parquet_round_trip_and_bomb_refused(tmp_path):
    frame = pd.DataFrame({"id": range(100), "name": [SECRET] * 100})
    path = tmp_path / "input.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path)
    assert len(read_all(path)) == 100
    with pytest.raises(InputError, match="limit") as caught:
        read_all(path, limits=ReadLimits(max_uncompressed_bytes=100))
    assert SECRET not in str(caught.value)


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "input.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 64 + SECRET.encode())
    with pytest.raises(InputError, match="Parquet") as caught:
        read_all(path)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "cell,formula",
    [("=1+1", True), ("@SUM(A1)", True), ("\tcmd", True), ("-2+3+cmd|' /C calc'!A0", True),
     ("+HYPERLINK(\"x\")", True), ("+1 608-549-3022", False), ("-12.5", False),
     ("+1 (212) 555-1234 ext. 4", False), ("a=b", False), ("", False)],
)
def test_formula_detection(cell, formula):
    assert is_formula(cell) is formula


UNUSUAL = [
    "- stable, continue metformin",
    "+49 30 1234567",
    "=SUM(A1)",  # formula-looking cells are data: neutralized only where a CSV is written for people
    "@home since Monday",
    "-12.5",
    "Müller-Lüdenscheidt, Zoë",
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_unusual_cells_are_data_not_errors(tmp_path, suffix):
    frame = pd.DataFrame({"Pat.-Nr.": [str(i) for i in range(len(UNUSUAL))], "visit_note": UNUSUAL,
                          "Geburtsdatum": ["02.03.1984"] * len(UNUSUAL)})
    path = tmp_path / f"input{suffix}"
    (frame.to_csv if suffix == ".csv" else frame.to_parquet)(path, index=False)
    read = read_all(path)
    assert read["visit_note"].tolist() == UNUSUAL
    assert list(read.columns) == ["Pat.-Nr.", "visit_note", "Geburtsdatum"]


def test_csv_and_parquet_number_rows_the_same_way(tmp_path):
    too_big = "y" * 200
    frame = pd.DataFrame({"a": ["1", "2", "3", too_big], "b": ["x"] * 4})
    limits = ReadLimits(max_cell_bytes=100, chunk_rows=2)
    rows = []
    for suffix in (".csv", ".parquet"):
        path = tmp_path / f"input{suffix}"
        (frame.to_csv if suffix == ".csv" else frame.to_parquet)(path, index=False)
        with pytest.raises(InputError) as caught:
            read_all(path, limits=limits)
        assert "larger than the limit" in str(caught.value) and too_big not in str(caught.value)
        rows.append((caught.value.row, caught.value.column))
    assert rows[0][0] == rows[1][0] == 4 and rows[1][1] == "a"


def test_empty_cells_are_missing_in_both_formats(tmp_path):
    path = tmp_path / "input.csv"
    path.write_text("a,b\n1,\n,2\n")
    read = read_all(path)
    assert read["b"].isna().tolist() == [True, False] and read["a"].isna().tolist() == [False, True]


def test_neutralize_formulas_only_touches_formulas():
    frame = pd.DataFrame({"note": ["=1+1", "- stable", "+1 608-549-3022", "@SUM(A1)", None], "n": [1, 2, 3, 4, 5]})
    out = neutralize_formulas(frame)
    assert out["note"].tolist()[:4] == ["'=1+1", "- stable", "+1 608-549-3022", "'@SUM(A1)"]
    assert pd.isna(out["note"].iloc[4])
    assert out["n"].tolist() == [1, 2, 3, 4, 5] and frame["note"].iloc[0] == "=1+1"
