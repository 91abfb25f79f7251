"""Real test documents, made on the spot: Chinese PDFs (both scripts, running header and footer,
lines broken inside sentences), a scanned PDF page, Word, HTML with navigation, EPUB, and bad files.

Used by tests/test_ingest.py, tests/test_browser.py and eval/bench_ingest.py. The PDFs use
reportlab's built-in CID fonts (STSong-Light for 简体, MSung-Light for 繁體: no font file needed);
the scanned page is drawn with Debian's fonts-noto-cjk.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")

# One fictional company per document, so every question has exactly one right source.
HANS_PAGES = [  # 星河智算 2033 annual report, Simplified; a question per page
    ["概况", "星河智算是一家虚构的人工智能公司，总部位于苏州工业园区，目前共有员工三百二十人，其中研发人员占七成。",
     "公司的使命是让低功耗推理芯片走进每一台边缘设备，这一目标自创立之初就没有改变过。"],
    ["产品", "星河智算的第一款芯片名为银河一号，采用十二纳米工艺制造，功耗只有同类产品的十分之一。",
     "银河一号在二零三二年开始量产，首批客户主要是安防摄像头厂商和工业质检设备厂商。"],
    ["融资", "二零三三年，星河智算完成了五亿元人民币的B轮融资，本轮融资由苏州创新基金领投，老股东继续跟投。",
     "这笔资金将主要用于第二代芯片的研发以及在深圳设立新的研发中心。"],
    ["展望", "展望未来，星河智算计划在二零三五年推出第二代芯片银河二号，目标是把能效再提高三倍。",
     "公司也在评估在香港上市的可能性，但管理层表示目前没有具体时间表。"],
]
HANS_HEADER = "星河智算 2033 年度报告 · 内部资料"

HANT_PAGES = [  # 月光生物, Traditional
    ["月光生物是一家虛構的生物科技公司，總部設在台中市，專門研發以海藻為原料的可分解塑膠。",
     "公司成立於二零二九年，創辦人是前中興大學教授林海音。"],
    ["月光生物的海藻塑膠在海水中九十天內即可完全分解，目前已經供應給三家連鎖飲料店製作吸管。",
     "二零三三年，月光生物的營收達到新台幣八億元，比前一年成長百分之六十。"],
    ["月光生物計劃在二零三四年於高雄興建第二座工廠，預計年產能為一萬兩千噸。",
     "公司表示，新工廠將全部使用太陽能供電。"],
]
HANT_HEADER = "月光生物 年度報告"

DOCX_BLOCKS = [  # 青松机器人: headings and paragraphs
    (0, "青松机器人公司介绍"),
    (1, "公司简介"),
    (None, "青松机器人是一家虚构的服务机器人公司，总部位于杭州市余杭区，成立于二零三零年。"),
    (1, "研发团队"),
    (None, "青松机器人的研发团队由一百五十名工程师组成，负责人是首席科学家周明远博士。"),
    (None, "研发团队的主要方向是养老院使用的护理机器人，包括搀扶、送药和夜间巡查。"),
    (1, "财务状况"),
    (None, "二零三三年青松机器人的营业收入为三亿元，首次实现盈利。"),
]

HTML_ARTICLE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>海鸥航运的故事 - 示例新闻网</title>
<style>body {{ font-family: sans-serif; }}</style><script>var tracking = "不要索引这段脚本";</script></head>
<body>
<header><nav><ul><li><a href="/">首页</a></li><li><a href="/tech">科技频道</a></li><li><a href="/finance">财经频道</a></li>
<li><a href="/about">关于我们</a></li><li><a href="/login">登录注册</a></li></ul></nav></header>
<aside class="sidebar"><h3>热门文章</h3><ul><li><a href="/a1">十大最受欢迎的旅游城市排行榜</a></li>
<li><a href="/a2">如何挑选一台适合自己的笔记本电脑</a></li></ul></aside>
<main><article>
<h1>海鸥航运的故事</h1>
<p>海鸥航运是一家虚构的航运公司，总部位于宁波，拥有四十二艘集装箱货船。</p>
<h2>创立</h2>
<p>海鸥航运由船长出身的陈大海在二零二八年创立，最初只有两艘二手货船，
主要往返于宁波和釜山之间。</p>
<h2>新能源船队</h2>
<p>二零三三年，海鸥航运订购了十艘以甲醇为燃料的新型货船，总价约为六十亿元，预计在二零三六年全部交付。</p>
<p>公司表示，新船队投入使用后，每年可减少约三十万吨二氧化碳排放。</p>
</article></main>
<footer><p>版权所有 © 2035 示例新闻网 | 联系我们 | 隐私政策 | 京ICP备00000000号</p></footer>
</body></html>
"""

SCAN_LINES = ["蓝鲸数据是一家虚构的数据公司，", "总部位于成都高新区，成立于二零三一年。",
              "蓝鲸数据的主要产品是一套气象数据分析平台。"]

EPUB_CHAPTERS = [("第一章 石榴出版社", ["石榴出版社是一家虚构的出版社，位于西安市碑林区，创立于二零二七年。"]),
                 ("第二章 代表作品", ["石榴出版社最畅销的图书是长篇小说《长安月》，累计销量超过两百万册。"])]

ARTICLE_HANS = (
    "鲸歌科技是一家虚构的海洋声学公司，总部位于青岛市崂山区。公司的主要产品是一套能够识别鲸鱼叫声的水下监听系统，"
    "已经部署在黄海和东海的二十多个观测站。二零三二年，鲸歌科技与中国海洋大学合作，建立了一个包含十万段鲸鱼叫声的开放数据库。"
    "公司创始人王海燕表示，保护海洋生物是鲸歌科技存在的意义，公司每年将利润的百分之十捐给海洋保护组织。"
    "二零三三年，鲸歌科技的监听系统帮助渔政部门发现了三起非法捕捞事件。"
)


def wrap(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)]


def _register_cid_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    for font in ("STSong-Light", "MSung-Light"):
        try:
            pdfmetrics.getFont(font)
        except KeyError:
            pdfmetrics.registerFont(UnicodeCIDFont(font))


def pdf_bytes(pages: list[list[str]], font: str = "STSong-Light", header: str = "", footer: str = "第 {n} 页 共 {total} 页",
              width: int = 26, headings: bool = False, encrypt: str | None = None) -> bytes:
    """A text PDF: each page has `header` on top, the paragraphs wrapped at `width` characters (so
    sentences break mid-line), and `footer` with the page number at the bottom."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    _register_cid_fonts()
    buf = io.BytesIO()
    kwargs = {}
    if encrypt:
        from reportlab.lib import pdfencrypt

        kwargs["encrypt"] = pdfencrypt.StandardEncryption(encrypt, canPrint=0)
    c = canvas.Canvas(buf, pagesize=A4, **kwargs)
    w, h = A4
    for n, paragraphs in enumerate(pages, 1):
        if header:
            c.setFont(font, 9)
            c.drawString(60, h - 40, header)
        y = h - 90
        for i, paragraph in enumerate(paragraphs):
            if headings and i == 0:
                c.setFont(font, 16)
                c.drawString(60, y, paragraph)
                y -= 30
                continue
            c.setFont(font, 12)
            for line in wrap(paragraph, width):
                c.drawString(60, y, line)
                y -= 18
            y -= 10
        if footer:
            c.setFont(font, 9)
            c.drawCentredString(w / 2, 30, footer.format(n=n, total=len(pages)))
        c.showPage()
    c.save()
    return buf.getvalue()


def hans_pdf() -> bytes:
    return pdf_bytes(HANS_PAGES, "STSong-Light", HANS_HEADER, headings=True)


def hant_pdf() -> bytes:
    return pdf_bytes(HANT_PAGES, "MSung-Light", HANT_HEADER, footer="— {n} —")


def scanned_pdf(lines: list[str] = SCAN_LINES) -> bytes:
    """Text drawn into an image (Noto Sans CJK), the image placed on a PDF page: no text layer."""
    from PIL import Image, ImageDraw, ImageFont
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    font = ImageFont.truetype(str(NOTO_CJK), 34, index=2)  # index 2: Simplified Chinese
    image = Image.new("RGB", (1240, 120 + 70 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((60, 60 + 70 * i), line, font=font, fill="black")
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    w, h = A4
    height = image.height * w / image.width
    c.drawImage(ImageReader(image), 0, h - height - 40, width=w, height=height)
    c.showPage()
    c.save()
    return buf.getvalue()


def docx_bytes(blocks=DOCX_BLOCKS) -> bytes:
    import docx

    document = docx.Document()
    for level, text in blocks:
        if level is None:
            document.add_paragraph(text)
        else:
            document.add_heading(text, level)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def html_bytes() -> bytes:
    return HTML_ARTICLE.format().encode("utf-8")


def epub_bytes(chapters=EPUB_CHAPTERS, title: str = "石榴出版社简史") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" '
                   'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                   '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')
        items = "".join(f'<item id="c{i}" href="c{i}.xhtml" media-type="application/xhtml+xml"/>' for i in range(len(chapters)))
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
        z.writestr("OEBPS/content.opf", f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
                   f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></metadata>'
                   f"<manifest>{items}</manifest><spine>{spine}</spine></package>")
        for i, (heading, paragraphs) in enumerate(chapters):
            body = "".join(f"<p>{p}</p>" for p in paragraphs)
            z.writestr(f"OEBPS/c{i}.xhtml", f'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
                       f"<head><title>{heading}</title></head><body><h1>{heading}</h1>{body}</body></html>")
    return buf.getvalue()


def zip_bomb_docx(inflated: int = 300_000_000) -> bytes:
    """A .docx-shaped zip whose document.xml inflates to `inflated` bytes of zeros (about 300 KB on disk)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            block = b"\0" * (1 << 20)
            for _ in range(inflated // len(block)):
                f.write(block)
    return buf.getvalue()


def many_pages_pdf(pages: int = 2000) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, pageCompression=1)
    for n in range(1, pages + 1):
        c.drawString(60, 700, f"page {n}")
        c.showPage()
    c.save()
    return buf.getvalue()


def to_traditional(text: str) -> str:
    import opencc

    return opencc.OpenCC("s2t").convert(text)


def to_simplified(text: str) -> str:
    import opencc

    return opencc.OpenCC("t2s").convert(text)
