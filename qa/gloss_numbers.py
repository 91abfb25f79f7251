"""English for Chinese numbers and dates, by rules: 三百多万美元 -> "over 3 million US dollars",
2023年3月 -> "March 2023", 百分之三十 -> "30%". Text is expected folded to Simplified (qa.text.fold_script);
english_number / english_date fold it themselves. Used by qa/gloss.py; nothing here guesses a meaning."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import fold_script

# ------------------------------------------------------------------ numbers

_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_SMALL = {"十": 10, "百": 100, "千": 1000}
_BIG = {"万": 10**4, "亿": 10**8}
_MULT = {**_SMALL, **_BIG}
_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_TENS = {10: "ten", 20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy", 80: "eighty",
         90: "ninety"}
_APPROX = {10: "dozens", 100: "hundreds", 1000: "thousands", 10**4: "tens of thousands",
           10**5: "hundreds of thousands", 10**6: "millions", 10**7: "tens of millions", 10**8: "hundreds of millions",
           10**9: "billions", 10**10: "tens of billions", 10**11: "hundreds of billions", 10**12: "trillions"}
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand")]

# unit after a number: (singular, plural); "" = a measure word, dropped (三家 -> "three")
_UNITS = {
    "美元": ("US dollar", "US dollars"), "美金": ("US dollar", "US dollars"),
    "元人民币": ("yuan", "yuan"), "人民币": ("yuan", "yuan"), "块钱": ("yuan", "yuan"), "元": ("yuan", "yuan"),
    "港元": ("Hong Kong dollar", "Hong Kong dollars"), "港币": ("Hong Kong dollar", "Hong Kong dollars"),
    "欧元": ("euro", "euros"), "日元": ("yen", "yen"), "英镑": ("pound", "pounds"),
    "倍": ("time", "times"), "次": ("time", "times"), "轮": ("round", "rounds"), "人": ("person", "people"),
    "岁": ("year old", "years old"), "%": ("%", "%"),
    "年": ("year", "years"), "天": ("day", "days"), "周": ("week", "weeks"), "星期": ("week", "weeks"),
    "小时": ("hour", "hours"), "分钟": ("minute", "minutes"), "秒": ("second", "seconds"),
    "季度": ("quarter", "quarters"), "月": ("month", "months"),  # 月 only after 个 (3个月); 3月 is March
    **{m: ("", "") for m in "个家位张款只台项篇部条名支架颗枚所座场件种批"},
}
_DURATIONS = ("年", "天", "周", "星期", "小时", "分钟", "秒", "季度", "月")
_DURATION_RE = "|".join(_DURATIONS)
_UNIT_RE = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]

_CN = "零〇一二两三四五六七八九十百千万亿"
_QTY = re.compile(rf"""
    (?<![\d.{_CN}])
    (?P<run>百分之[{_CN}点]+
      | [数几](?=\s*[十百千万亿])\s*[十百千万亿]+
      | [数几](?=\s*(?:{_UNIT_RE}))
      | \d+(?:\.\d+)?(?:\s*[多几余])?(?:\s*[十百千万亿])*
      | [{_CN}点]+(?:[多几余][十百千万亿]*)?)
    (?P<pct>\s*%)?
    \s*(?P<ge>个)?(?P<post>[多半](?=\s*(?:{_DURATION_RE})))?\s*(?P<unit>{_UNIT_RE})?
    (?P<more>(?<=[年天周期时钟秒度月])多)?(?P<rel>(?<=[年天周期时钟秒度月])[前后])?
    """, re.VERBOSE)

_YEAR = r"(?P<y>\d{4}|[〇零一二三四五六七八九]{4})\s*年"
_MONTH = r"(?P<m>1[0-2]|0?[1-9]|十[一二]?|[一二三四五六七八九])\s*月(?:份)?"
_DAY = r"(?P<d>3[01]|[12]\d|0?[1-9]|三十一?|二十[一二三四五六七八九]?|十[一二三四五六七八九]?|[一二三四五六七八九])\s*[日号]"
_PART = r"(?P<part>上半年|下半年|初|底|末|中(?!国|心|间)|上旬|中旬|下旬)?"
_DATES = [re.compile(r"(?<![\d" + _CN + r"])" + body) for body in (  # tried in this order at one position
    rf"(?:{_YEAR}\s*)?{_MONTH}\s*{_DAY}",  # 2024年5月20日, 5月20日
    rf"{_YEAR}\s*{_MONTH}{_PART}",  # 2023 年 3 月, 2024年8月底
    rf"(?:{_YEAR}|(?P<yy>\d{{2}})\s*年(?=\s*(?:上半年|下半年|初|底|末))){_PART}",  # 2019年, 2024年初, 23年底
    rf"(?<!个){_MONTH}(?![\d{_CN}]){_PART}",  # 6 月, 8月底
)]
_PART_WORDS = {"初": "early {}", "底": "end of {}", "末": "end of {}", "中": "mid-{}", "上半年": "first half of {}",
               "下半年": "second half of {}", "上旬": "early {}", "中旬": "mid-{}", "下旬": "late {}"}


def _cn_int(text: str) -> int | None:
    """一千二百 -> 1200, 二〇二三 -> 2023, 十五 -> 15, 三万五千 -> 35000; None if not a Chinese numeral."""
    if not text or any(ch not in _DIGIT and ch not in _MULT for ch in text):
        return None
    if not any(ch in _MULT for ch in text):  # digit by digit: 二〇二三
        return int("".join(str(_DIGIT[ch]) for ch in text))
    for big in ("亿", "万"):
        if big in text:
            left, right = text.split(big, 1)
            high = _cn_int(left) if left else 1
            low = _cn_int(right) if right else 0
            return None if high is None or low is None else high * _BIG[big] + low
    total, digit = 0, None
    for ch in text:
        if ch in _DIGIT:
            if digit is not None:  # two digits in a row (三四百) is a range, not a number
                return None
            digit = _DIGIT[ch]
        else:
            total += (1 if digit is None else digit) * _SMALL[ch]
            digit = None
    return total + (digit or 0)


def _cn_value(text: str) -> float | None:
    """A Chinese or Arabic number with an optional decimal part (三点五, 1.5) and multipliers (1100万)."""
    text = text.replace(" ", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([十百千万亿]*)", text)
    if m:
        value = float(m.group(1))
        for ch in m.group(2):
            value *= _MULT[ch]
        return value
    whole, _, decimals = text.partition("点")
    if decimals:
        head = _cn_int(whole)
        digits = "".join(str(_DIGIT.get(ch, "x")) for ch in decimals)
        return None if head is None or not digits.isdigit() else float(f"{head}.{digits}")
    if text and text[0] in _MULT and text[0] != "十":  # 万分, 千万 (an adverb): not a number on their own
        return None
    value = _cn_int(text)
    return None if value is None else float(value)


def _plain(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _scaled(value: float) -> tuple[float, str]:
    for size, word in _SCALES:
        if value >= size:
            return value / size, word
    return value, ""


@dataclass(frozen=True)
class _Quantity:
    english: str
    plural: bool = True
    approximate: bool = False  # "hundreds of millions" takes "of" before a unit


def _format(value: float, run: str, from_chinese: bool) -> str:
    if any(ch in run for ch in "万亿"):
        mantissa, word = _scaled(value)
        return f"{_plain(mantissa)} {word}".strip()
    if from_chinese and value == int(value) and value <= 10:
        return _WORDS[int(value)]
    if from_chinese:
        return f"{int(value):,}" if value == int(value) else _plain(value)
    return run  # Arabic digits as written


def _quantity(run: str) -> _Quantity | None:
    """The English of a number run (no unit): 三百多万 -> over 3 million, 数亿 -> hundreds of millions."""
    run = run.replace(" ", "")
    if run.startswith("百分之"):
        value = _cn_value(run[3:])
        return None if value is None else _Quantity(f"{_plain(value)}%")
    if run[0] in "数几":
        if len(run) == 1:
            return _Quantity("several")
        size = 1
        for ch in run[1:]:
            size *= _MULT[ch]
        return _Quantity(_APPROX[size], approximate=True) if size in _APPROX else None
    more = re.search(r"[多几余]", run)
    if more:
        base, tail = run[: more.start()], run[more.end():]
        if base in ("百", "千"):  # 百余家: over a hundred
            base = "一" + base
        if not base or base[-1] not in "十百千万亿0":  # 一多 (统一多模态) and 3多 are not numbers
            return None
        value = _cn_value(base)
        if value is None:
            return None
        for ch in tail:
            value *= _MULT[ch]
        if not tail and value in _TENS and base[-1] == "十":
            return _Quantity(f"more than {_TENS[int(value)]}")
        return _Quantity(f"over {_format(value, base + tail, not base[0].isdigit())}")
    pair = re.fullmatch(r"([一二两三四五六七八九])([二三四五六七八九])([十百千万亿]*)", run)
    if pair and _DIGIT[pair.group(2)] == _DIGIT[pair.group(1)] + 1:  # 三四百万: 3 to 4 million
        size = 1
        for ch in pair.group(3):
            size *= _MULT[ch]
        low, high = _DIGIT[pair.group(1)] * size, _DIGIT[pair.group(2)] * size
        if any(ch in run for ch in "万亿"):
            (m_low, word), m_high = _scaled(low), _scaled(high)[0]
            return _Quantity(f"{_plain(m_low)} to {_plain(m_high)} {word}")
        return _Quantity(f"{_format(low, pair.group(3), True)} to {_format(high, pair.group(3), True)}")
    value = _cn_value("一" + run if run[0] in "百千万亿" else run)  # 千万元: ten million yuan
    if value is None:
        return None
    return _Quantity(_format(value, run, not run[0].isdigit()), plural=value != 1)


def _render_quantity(match: re.Match) -> str | None:
    """English for one _QTY match, or None when the match is not a number after all (一直, 感慨万分)."""
    run, unit = match.group("run"), match.group("unit")
    if match.group("pct"):
        unit = "%"
    has_unit = unit is not None and (unit != "月" or match.group("ge"))  # 3月 is a date, handled before
    if unit == "月" and not match.group("ge"):
        return None
    plain_chinese = not re.search(r"\d", run) and not re.search(r"[万亿多几余数]|百分之", run)
    bare = not has_unit and not match.group("ge")
    if bare and plain_chinese and not (len(run) > 1 and re.search("[十百千]", run)):
        return None  # a bare 一 or 两: left to the dictionary (一千二百 is a number)
    if bare and run[0].isdigit() and not re.search(r"[万亿多几余]", run):
        return None  # 2000 alone: kept as written
    if run[0] in _MULT and run[0] != "十" and not run.startswith(("百分之", "百余", "百多", "千余", "千多")) \
            and not (has_unit and _UNITS[unit][0]):
        return None  # 千万 / 万分 as adverbs; 千万元 is a sum
    if unit == "年" and re.fullmatch(r"\d{4}|[〇零一二三四五六七八九]{4}", run.strip()):
        return None  # a year: the date rules
    quantity = _quantity(run)
    if quantity is None:
        return None
    text = quantity.english
    half = match.group("post") == "半"
    over = match.group("post") == "多" or match.group("more") == "多"
    if half:  # 一个半月: one and a half months
        text = f"{text} and a half"
    singular, plural = _UNITS[unit] if has_unit else ("", "")
    if plural == "%":
        return text if text.endswith("%") else f"{text}%"
    if plural:
        word = singular if (not quantity.plural and not half) else plural
        text = f"{text} of {plural}" if quantity.approximate else f"{text} {word}"
    if over and not text.startswith(("over", "more than")):
        text = f"over {text}"
    if match.group("rel"):
        text = f"{text} {'ago' if match.group('rel') == '前' else 'later'}"
    return text



def _month_number(text: str) -> int | None:
    value = int(text) if text.isdigit() else _cn_int(text)
    return value if value and 1 <= value <= 12 else None


def _render_date(match: re.Match) -> str | None:
    groups = match.groupdict()
    year = groups.get("y")
    if year is not None:
        year = year if year.isdigit() else str(_cn_int(year))
    elif groups.get("yy"):
        year = "'" + groups["yy"]
    month = _month_number(groups["m"]) if groups.get("m") else None
    if groups.get("m") and month is None:
        return None
    day = None
    if groups.get("d"):
        d = groups["d"]
        day = int(d) if d.isdigit() else _cn_int(d)
        if not day or day > 31:
            return None
    parts = [str(day)] if day else []
    if month:
        parts.append(_MONTHS[month - 1])
    if year:
        parts.append(year)
    text = " ".join(parts)
    part = match.groupdict().get("part")
    if part:
        if part in ("上半年", "下半年") and month:
            return None
        text = _PART_WORDS[part].format(text)
    return text


def english_number(text: str) -> str | None:
    """The English of a Chinese or Arabic quantity, or None when `text` is not one whole quantity.

    三百多萬美元 -> "over 3 million US dollars", 5亿 -> "500 million", 1.5万 -> "15 thousand",
    百分之三十 -> "30%", 十几个 -> "more than ten", 数十 -> "dozens", 40年前 -> "40 years ago".
    """
    folded = fold_script(text).strip()
    match = _QTY.fullmatch(folded)
    return None if match is None else _render_quantity(match)


def english_date(text: str) -> str | None:
    """The English of a Chinese date, or None: 2023 年 3 月 -> "March 2023", 2024年5月20日 -> "20 May 2024"."""
    folded = fold_script(text).strip()
    for pattern in _DATES:
        match = pattern.fullmatch(folded)
        if match is not None:
            return _render_date(match)
    return None


def first_rule(text: str, pos: int) -> tuple[re.Match, str, str] | None:
    """The earliest date or quantity at or after `pos` that the rules can say in English (dates win ties)."""
    best = None
    for pattern, render, kind in [(d, _render_date, "date") for d in _DATES] + [(_QTY, _render_quantity, "number")]:
        m = pattern.search(text, pos)
        while m is not None and (best is None or m.start() < best[0].start()):
            english = render(m) if m.group().strip() else None
            if english is not None:
                best = (m, english, kind)
                break
            m = pattern.search(text, m.start() + 1)
    return best
