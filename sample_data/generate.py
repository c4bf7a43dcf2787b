"""Write the sample input files leads.csv and leads.xlsx (same data, 200 rows).

Deterministic: a fixed seed and the standard library's ``random``, so running it again gives
the same leads.csv byte for byte (the .xlsx differs only in zip timestamps). openpyxl is needed
only for the .xlsx.

What the data exercises: phones in three styles (``+91 98450 98450``, ``09845098450``,
``+1 415 555 0100``) that must stay text; three emails that appear on two rows each (a
returning lead: two activities on one lead); notes with commas, double quotes and, on two rows,
an embedded newline; ``visited_at`` as a local (Asia/Kolkata) time between 2024-01-01 and
2025-12-31, written ``dd/mm/YYYY HH:MM`` in the CSV but stored as a real date-time cell in the
XLSX (read back as ``YYYY-MM-DD HH:MM:SS``), so a mapping must accept both formats. Visits are
between 09:00 and 21:59, never at midnight, so the XLSX never renders a date-only value.

Usage::

    python sample_data/generate.py            # writes next to this file
    python sample_data/generate.py /tmp/out   # writes elsewhere
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import sys
import unicodedata
from pathlib import Path

SEED = 20240101
ROWS = 200
RETURNING = 3  # emails that appear on two rows
COLUMNS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "city",
    "kyc_status",
    "visited_at",
    "amount",
    "product",
    "notes",
]
VISITED_FORMAT = "%d/%m/%Y %H:%M"

FIRST_NAMES = [
    "Aarav", "Aditi", "Ananya", "Arjun", "Deepika", "Divya", "Farhan", "Gaurav", "Ishaan",
    "Kavya", "Karthik", "Lakshmi", "Meera", "Neha", "Nikhil", "Pooja", "Priya", "Rahul",
    "Rohan", "Sanjay", "Shreya", "Siddharth", "Sneha", "Tanvi", "Varun", "Vikram", "Zara",
    "Harpreet", "Mohammed", "Fatima", "Suresh", "Lakshmanan", "Anjali", "Rajesh", "Sunita",
    "Emma", "Liam", "Olivia", "Noah", "Sophia", "James", "Chen", "Yuki", "Zoë", "José",
    "Søren", "Renée", "Amélie", "Ahmed", "Grace",
]  # fmt: skip
LAST_NAMES = [
    "Sharma", "Verma", "Iyer", "Reddy", "Nair", "Patel", "Shah", "Gupta", "Mehta", "Singh",
    "Kapoor", "Chatterjee", "Banerjee", "Das", "Menon", "Pillai", "Rao", "Joshi", "Kulkarni",
    "Khan", "Qureshi", "D'Souza", "Fernandes", "Gill", "Bhat", "Smith", "Johnson", "Brown",
    "García", "Müller", "Tanaka", "Wong", "O'Brien", "Nguyen", "Dubois",
]  # fmt: skip
DOMAINS = ["gmail.com", "yahoo.co.in", "outlook.com", "rediffmail.com", "example.com"]
INDIAN_CITIES = [
    "Mumbai", "Delhi", "Bengaluru", "Chennai", "Hyderabad", "Pune", "Kolkata", "Ahmedabad",
    "Jaipur", "Kochi", "Lucknow", "Chandigarh", "Indore", "Coimbatore",
]  # fmt: skip
ABROAD_CITIES = ["San Francisco", "New York", "London", "Dubai", "Singapore", "Toronto"]
KYC = ["Pending", "Verified", "Rejected"]
# product -> the amounts it is sold at (strings, as a person types them)
PRODUCTS = {
    "Savings Account": ["0", "500", "1000.00"],
    "Credit Card": ["499", "999.00", "1499.00"],
    "Mutual Fund SIP": ["500", "1000", "2500.00", "5000"],
    "Health Insurance": ["8999.00", "12499.50", "15999"],
    "Home Loan Consultation": ["250", "0"],
    "Demat Account": ["0", "299.00"],
}
NOTES = [
    "",
    "",
    "Called back, interested",
    "Wants a callback after 6pm, prefers Hindi",
    'Asked about the "zero balance" offer',
    "Referred by a friend",
    'Said "not now", follow up next quarter',
    "Visited branch, collected brochure",
    "Price sensitive, compare with competitor offer",
    "Needs PAN card copy, Aadhaar pending",
    'Customer wrote: "please email, don\'t call"',
    "Walk-in",
    "Webinar attendee",
]
MULTILINE_NOTES = [
    "Visited twice.\nSecond visit with spouse, ready to sign",
    'Documents received:\n- PAN\n- "Address proof" (utility bill)',
]


def _ascii(text: str) -> str:
    """Email-safe form of a name: Zoë -> zoe, D'Souza -> dsouza."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _phone(rng: random.Random, abroad: bool) -> str:
    if abroad:
        return f"+1 {rng.randint(201, 989)} 555 {rng.randint(100, 199):04d}"
    mobile = f"{rng.choice('6789')}{rng.randint(0, 999_999_999):09d}"
    if rng.random() < 0.5:
        return f"+91 {mobile[:5]} {mobile[5:]}"
    return f"0{mobile}"


def _visited(rng: random.Random) -> dt.datetime:
    """A local (Asia/Kolkata) office-hours time in 2024-2025."""
    day = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 730))  # 730 -> 2025-12-31
    return dt.datetime.combine(day, dt.time(rng.randint(9, 21), rng.randint(0, 59)))


def make_rows(seed: int = SEED) -> list[dict[str, object]]:
    """The sample rows; ``visited_at`` is a naive local datetime, everything else text."""
    rng = random.Random(seed)
    emails: set[str] = set()
    people: list[dict[str, object]] = []
    while len(people) < ROWS - RETURNING:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{_ascii(first)}.{_ascii(last)}{rng.choice(['', '', str(rng.randint(1, 99))])}"
        email = f"{email}@{rng.choice(DOMAINS)}"
        if email in emails:
            continue
        emails.add(email)
        abroad = rng.random() < 0.12
        product = rng.choice(list(PRODUCTS))
        people.append(
            {
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": _phone(rng, abroad),
                "city": rng.choice(ABROAD_CITIES if abroad else INDIAN_CITIES),
                "kyc_status": rng.choice(KYC),
                "visited_at": _visited(rng),
                "amount": rng.choice(PRODUCTS[product]),
                "product": product,
                "notes": rng.choice(NOTES),
            }
        )
    rows = list(people)
    # Returning leads: the same person again, later in the file, with a new activity.
    for index in rng.sample(range(0, 60), RETURNING):
        again = dict(people[index])
        product = rng.choice(list(PRODUCTS))
        again.update(
            visited_at=_visited(rng),
            product=product,
            amount=rng.choice(PRODUCTS[product]),
            notes=f"Returning lead, now asking about {product}",
        )
        rows.insert(rng.randint(100, len(rows)), again)
    for note, index in zip(MULTILINE_NOTES, rng.sample(range(10, ROWS - 10), 2), strict=True):
        rows[index]["notes"] = note
    return rows


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    # utf-8-sig: what Excel's "CSV UTF-8" writes, so the sample looks like a real export.
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            visited = row["visited_at"]
            assert isinstance(visited, dt.datetime)
            writer.writerow({**row, "visited_at": visited.strftime(VISITED_FORMAT)})


def write_xlsx(rows: list[dict[str, object]], path: Path) -> None:
    import openpyxl  # only whoever regenerates the samples needs it

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Leads"
    ws.append(COLUMNS)
    visited_col = COLUMNS.index("visited_at") + 1
    for row in rows:
        # Phone and amount go in as strings, so they are text cells as in a careful export;
        # visited_at is a real date-time cell, as when someone typed it into Excel.
        ws.append([row[c] for c in COLUMNS])
        ws.cell(ws.max_row, visited_col).number_format = "dd/mm/yyyy hh:mm"
    wb.save(path)


def main(out_dir: Path | None = None) -> None:
    out = out_dir or Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    rows = make_rows()
    write_csv(rows, out / "leads.csv")
    write_xlsx(rows, out / "leads.xlsx")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
