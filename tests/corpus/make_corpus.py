"""Write the tricky input files of tests/corpus/ (run it after changing one; commit the output).

Each file is a few hundred bytes and shows one thing real exports get wrong or do differently;
tests/reader/test_corpus.py says exactly what the reader must make of each. Text files are
written byte for byte here so that the bytes (BOM, line ends, code page) are visible in review.

    python tests/corpus/make_corpus.py
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
import sys
from pathlib import Path

import openpyxl
from openpyxl.utils.datetime import CALENDAR_MAC_1904

HERE = Path(__file__).resolve().parent

# name -> exact bytes
TEXT_FILES: dict[str, bytes] = {
    # Excel's "CSV UTF-8 (Comma delimited)": a byte-order mark and CRLF line ends.
    "bom_utf8.csv": codecs.BOM_UTF8
    + "email,city\r\nasha@example.in,Pune\r\nravi@example.in,Kraków\r\n".encode(),
    # Excel's plain "CSV" on Western Windows: code page 1252, so é ü ñ € are single bytes.
    "cp1252_accents.csv": (
        "name,city,note\r\nRenée Dubois,Zürich,paid 5 €\r\nJosé Nuñez,Málaga,señor\r\n"
    ).encode("cp1252"),
    # A European export: ';' between cells because ',' is the decimal separator.
    "semicolon.csv": (
        "Vorname;Nachname;Betrag;Datum\r\nJürgen;Müller;1.234,56;05.03.2024\r\n"
        "Anna;Schmidt;99,90;06.03.2024\r\n"
    ).encode(),
    # Quoted cells with the delimiter, doubled quotes and line breaks; a blank line.
    "quoted_multiline.csv": (
        b'name,notes,phone\n"Rao, Priya","said ""call me"", then left",09845098450\n'
        b'"Iyer","line one\nline two\nline three",+91 98450 98450\n'
        b"\n"
        b'Khan,"",""\n'
    ),
    # One row too long (an unquoted comma), one too short (a missing trailing cell).
    "ragged.csv": (
        b"name,city,amount\nAsha,Pune,100\nRavi,Mumbai, MH,200\nMeera,Delhi\nJohn,Goa,300\n"
    ),
    # Excel's "Unicode Text" is UTF-16 little-endian with a byte-order mark.
    "utf16.csv": codecs.BOM_UTF16_LE
    + "name,city\r\nRenée,Zürich\r\n李雷,北京\r\n".encode("utf-16-le"),
    "duplicate_header.csv": b"email,name, email ,phone\na@x.in,A,b@x.in,1\n",
    "empty.csv": b"",
    "header_only.csv": b"email,name,phone\r\n",
    # The start of a PNG: NUL bytes say it is not text in any code page we accept.
    "binary.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06",
}


def write_dates_phones(path: Path) -> None:
    """Serial dates, phones stored as numbers, header on row 2, and a second sheet."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Leads"
    # row 1 left empty: the header is on row 2, the data on rows 3 and 5 (row 4 is empty)
    ws.append([])
    ws.append(["name", "phone", "visited_at", "day", "amount"])
    ws.append(["Asha", 9845098450, dt.datetime(2024, 3, 5, 14, 30), dt.date(2024, 3, 5), 1499.5])
    ws.append([])
    ws.append(["Ravi", 919845098450, dt.datetime(2025, 12, 31, 0, 0), dt.date(2025, 1, 2), 250])
    ws["B3"].number_format = "0"  # how a phone typed into Excel looks: a plain number
    ws["B5"].number_format = "0"
    other = wb.create_sheet("Summary")
    other.append(["month", "leads"])
    other.append(["March", 2])
    wb.save(path)


def write_date1904(path: Path) -> None:
    """A workbook in the 1904 date system (old Mac Excel): the same serial is another day."""
    wb = openpyxl.Workbook()
    wb.epoch = CALENDAR_MAC_1904
    ws = wb.active
    ws.title = "Mac"
    ws.append(["name", "visited_at", "day"])
    ws.append(["Asha", dt.datetime(2024, 3, 5, 14, 30), dt.date(2024, 3, 5)])
    wb.save(path)


def xls_bytes(sheet: str, cells: list[tuple[int, int, str | float, int]], date1904: bool) -> bytes:
    """A minimal Excel 97-2003 (.xls, BIFF8) workbook: one sheet of (row, col, value, xf) cells.

    openpyxl cannot write .xls, so the bytes are built here: an OLE2 compound file (header, one
    FAT sector, one directory sector) holding a "Workbook" stream padded to 4096 bytes so that it
    lives in regular sectors. xf 0 is General, 1 the built-in date format 14, 2 the date-time
    format 22. Only the records calamine needs are written (MS-XLS 2.4: BOF, DATE1904, XF,
    BoundSheet8, Label, Number, EOF).
    """

    def record(typ: int, data: bytes = b"") -> bytes:
        return struct.pack("<HH", typ, len(data)) + data

    def bof(kind: int) -> bytes:  # 0x0005 workbook globals, 0x0010 worksheet
        return record(0x0809, struct.pack("<HH", 0x0600, kind) + bytes(12))

    name = sheet.encode("latin-1")
    globals_ = bof(0x0005) + record(0x0022, struct.pack("<H", int(date1904)))
    globals_ += b"".join(record(0x00E0, struct.pack("<HH", 0, f) + bytes(16)) for f in (0, 14, 22))
    sheet_pos = len(globals_) + (4 + 8 + len(name)) + 4  # after BoundSheet8 and EOF
    globals_ += record(0x0085, struct.pack("<IBBBB", sheet_pos, 0, 0, len(name), 0) + name)
    globals_ += record(0x000A)
    body = bof(0x0010)
    for row, col, value, xf in cells:
        if isinstance(value, str):
            text = value.encode("latin-1")
            body += record(0x0204, struct.pack("<HHHHB", row, col, xf, len(text), 0) + text)
        else:
            body += record(0x0203, struct.pack("<HHHd", row, col, xf, value))
    stream = globals_ + body + record(0x000A)
    stream = stream.ljust(max(4096, -(-len(stream) // 512) * 512), b"\0")

    end, free, fat_sector, no_stream = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
    sectors = len(stream) // 512
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + bytes(6)
        # directory sectors, FAT sectors, first directory sector, transaction, mini cutoff,
        # first mini FAT, mini FAT sectors, first DIFAT, DIFAT sectors, DIFAT[0] (the FAT)
        + struct.pack("<10I", 0, 1, 1, 0, 4096, end, 0, end, 0, 0)
        + struct.pack("<I", free) * 108
    )
    fat = [fat_sector, end] + [3 + i for i in range(sectors - 1)] + [end]
    fat += [free] * (128 - len(fat))

    def entry(entry_name: str, kind: int, child: int, start: int, size: int) -> bytes:
        raw = entry_name.encode("utf-16-le") + b"\0\0" if entry_name else b""
        return (
            raw.ljust(64, b"\0")
            + struct.pack("<HBB", len(raw), kind, 1)
            + struct.pack("<III", no_stream, no_stream, child)
            + bytes(36)
            + struct.pack("<IQ", start, size)
        )

    directory = (
        entry("Root Entry", 5, 1, end, 0)
        + entry("Workbook", 2, no_stream, 2, len(stream))
        + entry("", 0, no_stream, 0, 0) * 2
    )
    return header + struct.pack("<128I", *fat) + directory + stream


LEGACY_CELLS: list[tuple[int, int, str | float, int]] = [
    (0, 0, "name", 0), (0, 1, "phone", 0), (0, 2, "day", 0), (0, 3, "visited_at", 0),
    (1, 0, "Asha", 0), (1, 1, 9845098450.0, 0), (1, 2, 43894.0, 1), (1, 3, 43894.6041666667, 2),
    # row 3 (index 2) left empty
    (3, 0, "Renée", 0), (3, 3, 43894.5, 2),
]  # fmt: skip


def main(out: Path = HERE) -> None:
    for name, data in TEXT_FILES.items():
        (out / name).write_bytes(data)
    write_dates_phones(out / "dates_phones.xlsx")
    write_date1904(out / "date1904.xlsx")
    # An .xlsx workbook saved under a .csv name: a zip file, not text.
    # Serial 43894 is 2020-03-04 in the 1900 date system and 2024-03-05 in the 1904 one.
    (out / "legacy.xls").write_bytes(xls_bytes("Old", LEGACY_CELLS, date1904=False))
    (out / "legacy1904.xls").write_bytes(xls_bytes("Old", LEGACY_CELLS, date1904=True))
    (out / "workbook_named.csv").write_bytes((out / "date1904.xlsx").read_bytes())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
