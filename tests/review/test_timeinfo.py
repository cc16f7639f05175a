"""Recording time from file names, site metadata, and ``soundnet detections``."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers.reviewrun import make_run, scores_with
from soundnet_cli.errors import SoundNetError, UsageError
from soundnet_cli.review.timeinfo import iso, parse_tz, read_meta, start_from_name

BERLIN = parse_tz("Europe/Berlin")


@pytest.mark.parametrize("name, spec, tz, expected", [
    ("20250714_085526.WAV", "audiomoth", BERLIN, "2025-07-14T08:55:26+02:00"),
    ("20250114_085526.WAV", "audiomoth", BERLIN, "2025-01-14T08:55:26+01:00"),  # winter time
    ("5F0D6A2E.WAV", "audiomoth", timezone.utc, "2020-07-14T08:17:50+00:00"),  # 1594714670
    ("SITE_A_20250714_085526.wav", "song-meter", parse_tz("-05:00"),
     "2025-07-14T08:55:26-05:00"),
    ("S4A01234_20250714_085526_000.wav", "song-meter", timezone.utc,
     "2025-07-14T08:55:26+00:00"),
    ("rec-2025-07-14 08.55.26.flac", "auto", timezone.utc, "2025-07-14T08:55:26+00:00"),
    ("20250714_085526.WAV", "auto", timezone.utc, "2025-07-14T08:55:26+00:00"),
    ("pond_14.07.25_0855.wav", "%d.%m.%y_%H%M", timezone.utc, "2025-07-14T08:55:00+00:00"),
])
def test_start_from_name(name: str, spec: str, tz, expected: str) -> None:
    start = start_from_name(name, spec, tz)
    assert start is not None and iso(start) == expected


@pytest.mark.parametrize("name, spec", [("dawn.wav", "auto"), ("20251399_000000.wav", "auto"),
                                        ("SITE_20250714_085526.wav", "audiomoth"),
                                        ("x.wav", "%Y%m%d")])
def test_names_without_a_time(name: str, spec: str) -> None:
    assert start_from_name(name, spec, timezone.utc) is None


def test_bad_zone_and_pattern_are_usage_errors(run, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a time zone"):
        parse_tz("Mars/Olympus")
    out = make_run(tmp_path, {"a.wav": scores_with(3, {"dog": [(0, 2, 0.9)]})})
    result = run("detections", out, "--time-from-name", "yyyymmdd")
    assert result.exit_code == 2 and "strftime pattern" in result.stderr
    result = run("detections", out, "--tz", "UTC")
    assert result.exit_code == 2 and "--tz needs --time-from-name" in result.stderr


def test_meta_rows_by_file_then_nearest_folder(tmp_path: Path) -> None:
    meta = tmp_path / "sites.csv"
    meta.write_text("where,site,latitude\nnorth,N,60.1\nnorth/pond,NP,60.2\nspecial.wav,S,1.0\n")
    table = read_meta(meta)
    assert table.lookup("rec/north/a.wav")["site"] == "N"
    assert table.lookup("north/pond/b.wav")["site"] == "NP"
    assert table.lookup("north/pond/special.wav")["site"] == "S"
    assert table.lookup("south/c.wav") == {"site": "", "latitude": ""}
    meta.write_text("file,onset\na.wav,1\n")
    with pytest.raises(SoundNetError, match="clash"):
        read_meta(meta)


def test_detections_per_hour_and_day_with_sites(tmp_path: Path, run) -> None:
    out = make_run(tmp_path, {
        "north/20250714_085526.wav": scores_with(8, {"dog": [(2, 5, 0.9)], "rain": [(6, 7, 0.6)]}),
        "south/20250714_215958.wav": scores_with(6, {"dog": [(3, 4, 0.8)]}),
    })
    meta = tmp_path / "sites.csv"
    meta.write_text("folder,site,latitude\nnorth,N,60.1\nsouth,S,40.0\n")
    result = run("detections", out, "--time-from-name", "audiomoth", "--tz", "+02:00",
                 "--meta", meta, "--out", tmp_path / "t", "--no-plot")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "t" / "detections.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    north_dog = next(r for r in rows if r["class"] == "dog" and r["site"] == "N")
    assert north_dog["start_time"] == "2025-07-14T08:55:28+02:00"
    assert north_dog["end_time"] == "2025-07-14T08:55:31+02:00" and north_dog["latitude"] == "60.1"
    south = next(r for r in rows if r["site"] == "S")  # 21:59:58 + 3 s: the next day, 22:00
    assert south["start_time"] == "2025-07-14T22:00:01+02:00"
    lines = result.stdout.splitlines()
    assert lines[0] == "site\tday\tclass\tdetections"
    assert lines[1:] == ["N\t2025-07-14\tdog\t1", "N\t2025-07-14\train\t1",
                         "S\t2025-07-14\tdog\t1"]
    with open(tmp_path / "t" / "per_hour.csv", newline="") as f:
        hours = [(r["site"], r["hour"], r["class"], r["hour_of_day"]) for r in csv.DictReader(f)]
    assert ("S", "2025-07-14T22:00+02:00", "dog", "22") in hours
    assert datetime.fromisoformat(hours[0][1]).utcoffset().total_seconds() == 7200


def test_clips_carry_clock_times(tmp_path: Path, run) -> None:
    out = make_run(tmp_path, {"SITE_20250714_085526.wav": scores_with(6, {"dog": [(2, 4, 0.9)]})})
    result = run("clips", out, "--out", tmp_path / "c", "--time-from-name", "song-meter", "-q")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "c" / "clips.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["start_time"], row["end_time"]) == ("2025-07-14T08:55:28+00:00",
                                                    "2025-07-14T08:55:30+00:00")
