"""PDFs made in the tests: pages with text, bookmarks, a link, page labels and metadata
(reportlab draws them, pikepdf adds what reportlab does not), and an encrypted one."""

import io

import pikepdf
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas


def book(pages: int = 5, *, title: str = "Field Guide") -> bytes:
    """A `pages`-page PDF with one bookmark per page, a link on page 1, page labels
    (i, ii, then 1, 2, …) and a title in its metadata."""
    buffer = io.BytesIO()
    sheet = canvas.Canvas(buffer, pagesize=A4)
    sheet.setTitle(title)
    for number in range(1, pages + 1):
        sheet.drawString(72, 760, f"{title}, page {number}")
        if number == 1:
            sheet.linkURL("https://example.com/errata", (72, 700, 300, 720))
            sheet.drawString(72, 705, "Errata")
        sheet.bookmarkPage(f"page-{number}")
        sheet.addOutlineEntry(f"Chapter {number}", f"page-{number}", level=0)
        sheet.showPage()
    sheet.save()
    pdf = pikepdf.open(io.BytesIO(buffer.getvalue()))
    pdf.Root.PageLabels = pdf.make_indirect(
        pikepdf.Dictionary(
            Nums=[
                0,
                pikepdf.Dictionary(S=pikepdf.Name.r),
                2,
                pikepdf.Dictionary(S=pikepdf.Name.D),
            ]
        )
    )
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def encrypted(pages: int = 2) -> bytes:
    """A PDF that opens only with a password."""
    pdf = pikepdf.open(io.BytesIO(book(pages)))
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(user="reader", owner="owner"))
    return out.getvalue()
