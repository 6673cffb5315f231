"""Dates as written on Lloyd George pages: formats, OCR noise, clinical look-alikes, two-digit years."""

import datetime as dt

import pytest

from digitise.dates import find_dates, find_year, out_of_order
from digitise.model import DatePrecision

TODAY = dt.date(2025, 6, 1)
BORN = dt.date(1950, 3, 5)


def dates(text, born=BORN, today=TODAY):
    return [m.date for m in find_dates(text, born, today)]


@pytest.mark.parametrize("text, expected", [
    ("3/5/76", dt.date(1976, 5, 3)),
    ("03/05/76", dt.date(1976, 5, 3)),
    ("12.06.98", dt.date(1998, 6, 12)),
    ("12-06-1998", dt.date(1998, 6, 12)),
    ("3/5/1976", dt.date(1976, 5, 3)),
    ("12/06/1998", dt.date(1998, 6, 12)),
    ("3rd May 1976", dt.date(1976, 5, 3)),
    ("3 May 76", dt.date(1976, 5, 3)),
    ("12 Jun 98", dt.date(1998, 6, 12)),
    ("12 June 1998", dt.date(1998, 6, 12)),
    ("21st Sept. 1985", dt.date(1985, 9, 21)),
    ("the 2nd of March, 1981", dt.date(1981, 3, 2)),
    ("20TH OCT 1951", dt.date(1951, 10, 20)),
])
def test_day_formats(text, expected):
    (m,) = find_dates(text, BORN, TODAY)
    assert m.date == expected
    assert m.precision is DatePrecision.day


@pytest.mark.parametrize("text, expected", [
    ("May 1976", dt.date(1976, 5, 1)),
    ("June 1998", dt.date(1998, 6, 1)),
    ("Sept '76", dt.date(1976, 9, 1)),
])
def test_month_precision(text, expected):
    (m,) = find_dates(text, BORN, TODAY)
    assert (m.date, m.precision) == (expected, DatePrecision.month)


def test_match_reports_position_and_text_as_read():
    text = "Seen 3 / 5 / 76, C/O cough"
    (m,) = find_dates(text, BORN, TODAY)
    assert text[m.start:m.end] == m.text == "3 / 5 / 76"


@pytest.mark.parametrize("text, expected", [
    ("O3/O5/l976", dt.date(1976, 5, 3)),  # O and l for 0 and 1
    ("3/5/I976", dt.date(1976, 5, 3)),
    ("1o/5/76", dt.date(1976, 5, 10)),
    ("2|/5/76", dt.date(1976, 5, 21)),
    ("1S/5/76", dt.date(1976, 5, 15)),
    ("3/S/76", dt.date(1976, 5, 3)),
    ("3 / 5 / 76", dt.date(1976, 5, 3)),  # spaces around separators
    ("3/ 5 /76", dt.date(1976, 5, 3)),
    ("3/5/76.", dt.date(1976, 5, 3)),  # trailing punctuation
    ("3/5/76,", dt.date(1976, 5, 3)),
    ("l2th May l976", dt.date(1976, 5, 12)),
    ("16/4,1972", dt.date(1972, 4, 16)),  # handwritten slashes read as commas
    ("10,04,78", dt.date(1978, 4, 10)),
    ("28,/6,2001", dt.date(2001, 6, 28)),
    ("18 @ug 82", dt.date(1982, 8, 18)),  # a month's capital misread, the rest intact
    ("16 Sun 99", dt.date(1999, 6, 16)),
    ("23rd dul 1990", dt.date(1990, 7, 23)),
    ("27 Mov 73", dt.date(1973, 11, 27)),
    ("12 Nay 88", dt.date(1988, 5, 12)),
])
def test_ocr_noise(text, expected):
    assert dates(text) == [expected]


@pytest.mark.parametrize("text", [
    "BP 150/95", "C/O cough 3/52", "D&V 2/7. O/E", "r/v 3/12", "PEFR 380", "250mg tds",
    "HbA1c 58", "co-codamol 8/500 prn", "ROS 7/7", "R THR 1985 (hosp letter)", "Batch 1234",
    "INR 2.5. 30 tabs", "may 10 days", "3 May", "1/2/80/4", "3/5/761", "x3/5/76",
    "Il/So/OO", "sats 94%", "Hb 10.2", "2-3 x daily", "wt 86kg", "C/O cough 2/7, 10 cigs/day",
    "Sun 1976", "sun 99", "seen Way 88",
])
def test_clinical_values_are_not_dates(text):
    assert dates(text) == []


@pytest.mark.parametrize("text", ["31/02/80", "29/02/81", "0/5/76", "12/13/80", "5/13/80", "32 May 1976"])
def test_impossible_dates_are_rejected(text):
    assert dates(text) == []


def test_ordinal_that_cannot_be_the_day_means_a_lost_digit():
    assert dates("2th Sep 1954") == []  # "12th" or "20th": no guessing
    assert dates("22nd Sep 1954") == [dt.date(1954, 9, 22)]


def test_two_digit_years_follow_the_patient_life():
    born_1950 = dt.date(1950, 3, 5)
    assert dates("3/5/62", born_1950) == [dt.date(1962, 5, 3)]
    assert dates("3/5/05", born_1950) == [dt.date(2005, 5, 3)]
    assert dates("3/5/96", dt.date(1995, 1, 1)) == [dt.date(1996, 5, 3)]
    # Both centuries inside the life: the one closest after birth.
    assert dates("3/5/21", dt.date(1920, 1, 1)) == [dt.date(1921, 5, 3)]
    # Before birth and in the future: no date at all.
    assert dates("3/5/49", born_1950) == []
    assert dates("3 May 49", born_1950) == []


def test_dates_outside_the_life_are_dropped():
    assert dates("3/5/1949") == []
    assert dates("3/5/2030") == []
    assert dates("1/3/50") == []  # four days before birth
    assert dates("March 1950") == [dt.date(1950, 3, 1)]  # the month of birth is in the life
    assert dates("5/3/50") == [dt.date(1950, 3, 5)]  # the day of birth too


def test_without_born_two_digit_years_pivot_on_today():
    assert dates("3/5/76", None) == [dt.date(1976, 5, 3)]
    assert dates("3/5/24", None) == [dt.date(2024, 5, 3)]
    assert dates("3/5/26", None) == [dt.date(1926, 5, 3)]
    assert dates("3/7/25", None) == []  # after today


def test_several_dates_in_order_without_overlaps():
    found = find_dates("Seen 3rd May 1976, r/v 10/6/76 and May 1977", BORN, TODAY)
    assert [m.text for m in found] == ["3rd May 1976", "10/6/76", "May 1977"]


def test_a_lone_year_only_when_asked():
    assert find_dates("R THR 1985", BORN, TODAY) == ()
    m = find_year("161, jm 1978", BORN, TODAY)
    assert (m.date, m.precision, m.text) == (dt.date(1978, 1, 1), DatePrecision.year, "1978")
    assert find_year("1949", BORN, TODAY) is None  # before birth
    assert find_year("3/5/1976", BORN, TODAY) is None  # part of a date, not a lone year


def test_out_of_order_dates_on_a_card():
    def at(*texts):
        return [find_dates(t, BORN, TODAY)[0] for t in texts]

    assert out_of_order(at("3/5/76", "4/6/76", "8/7/96", "9/8/76", "1/9/76")) == {2}
    assert out_of_order(at("3/5/76", "4/6/76", "8/7/96", "9/8/76")) == {2, 3}  # 96 or the 76 after it
    assert out_of_order(at("3/5/76", "1/5/76")) == {0, 1}  # which one is wrong is unknowable
    assert out_of_order(at("10/5/76", "May 1976", "1/6/76")) == set()  # the month holds the day
    assert out_of_order([]) == set()
