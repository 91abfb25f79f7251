"""The English rendering of Chinese answers (qa/gloss.py): number and date rules, names, CC-CEDICT glosses,
and the English line the service adds for English questions on the built-in corpus."""

import io
import re

import pytest

from conftest import REPO
from qa.aliases import AliasLexicon
from qa.gloss import (cedict_gloss, english_gloss, english_name, english_summary, gloss_tokens, is_person_name, key_terms,
                      name_pinyin)
from qa.gloss_numbers import english_date, english_number
from qa.types import Answer, Citation

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


@pytest.fixture(scope="module")
def lexicon():
    return AliasLexicon.load(REPO / "corpus")


@pytest.mark.parametrize("text, english", [
    # 萬/万, 億/亿 and 多
    ("三百多萬美元", "over 3 million US dollars"),
    ("三百多万美元", "over 3 million US dollars"),
    ("5亿", "500 million"),
    ("5億", "500 million"),
    ("1.5万", "15 thousand"),
    ("10萬", "100 thousand"),
    ("1100 万", "11 million"),
    ("6000 亿美元", "600 billion US dollars"),
    ("30億元人民幣", "3 billion yuan"),
    ("千万元人民币", "10 million yuan"),
    ("500 万次", "5 million times"),
    ("1000多", "over 1000"),
    ("百余家", "over 100"),
    ("一年多", "over one year"),
    ("一个多月", "over one month"),
    # approximate and ranges
    ("十几个", "more than ten"),
    ("十多个", "more than ten"),
    ("二十几", "more than twenty"),
    ("数十", "dozens"),
    ("數億美元", "hundreds of millions of US dollars"),
    ("幾百億元", "tens of billions of yuan"),
    ("几位", "several"),
    ("三四百萬美元", "3 to 4 million US dollars"),
    # percentages
    ("30%", "30%"),
    ("30％", "30%"),
    ("百分之三十", "30%"),
    ("百分之三十五点五", "35.5%"),
    # plain Chinese numerals, 兩/两, durations
    ("一千二百", "1,200"),
    ("兩千", "2,000"),
    ("三家", "three"),
    ("3个月", "3 months"),
    ("一個半月", "one and a half months"),
    ("40年前", "40 years ago"),
    ("5年後", "5 years later"),
    ("兩年後", "two years later"),
    ("10000倍", "10000 times"),
])
def test_numbers(text, english):
    assert english_number(text) == english


@pytest.mark.parametrize("text", ["一", "两", "2000", "感慨万分", "十分", "统一", "千万", "2023年"])
def test_what_is_not_a_quantity_is_left_to_the_dictionary(text):
    assert english_number(text) is None


@pytest.mark.parametrize("text, english", [
    ("2023 年 3 月", "March 2023"),
    ("2023年3月", "March 2023"),
    ("2024年5月20日", "20 May 2024"),
    ("2023 年 3 月 20 日", "20 March 2023"),
    ("3 月 20 日", "20 March"),
    ("5月20号", "20 May"),
    ("2019 年", "2019"),
    ("二〇二三年", "2023"),
    ("十二月", "December"),
    ("2024年初", "early 2024"),
    ("2024年底", "end of 2024"),
    ("2024年上半年", "first half of 2024"),
    ("8月底", "end of August"),
    ("2024年8月底", "end of August 2024"),
    ("23年底", "end of '23"),  # the century is not written, so none is added
])
def test_dates(text, english):
    assert english_date(text) == english


@pytest.mark.parametrize("text", ["6 个月", "13月", "2024", "一月份的事"])
def test_what_is_not_a_date(text):
    assert english_date(text) is None


@pytest.mark.parametrize("text, english", [
    ("阶跃星辰", "StepFun"),
    ("階躍星辰", "StepFun"),  # Traditional
    ("李开复", "Kai-Fu Lee"),
    ("李開復", "Kai-Fu Lee"),
    ("零一萬物", "01.AI"),
    ("月之暗面", "Moonshot"),
    ("智譜", "Zhipu"),
])
def test_entity_names_come_from_the_lexicon(lexicon, text, english):
    assert english_name(text, lexicon) == english


@pytest.mark.parametrize("text, english", [
    ("姜大昕", "Jiang Daxin"),
    ("王小川", "Wang Xiaochuan"),
    ("楊植麟", "Yang Zhilin"),  # Traditional, folded first
    ("闫俊杰", "Yan Junjie"),
    ("曾小明", "Zeng Xiaoming"),  # the surname as CC-CEDICT reads it (not ceng)
    ("吕小军", "Lü Xiaojun"),
    ("欧阳娜娜", "Ouyang Nana"),  # compound surname
    ("张西安", "Zhang Xi'an"),  # syllable apostrophe
])
def test_person_names_not_in_the_lexicon_are_given_in_pinyin(lexicon, text, english):
    assert is_person_name(text)
    assert english_name(text, lexicon) == english == name_pinyin(text)


@pytest.mark.parametrize("text", [
    "公司",  # no surname
    "王国",  # a CC-CEDICT word (kingdom)
    "李",  # one character
    "王小川先生你好",  # too long
    "王A",  # not all Han
    "曾国藩",  # in CC-CEDICT: its entry, not a guessed reading
])
def test_a_person_name_is_decided_conservatively(text):
    assert not is_person_name(text)


def test_cedict_glosses_follow_the_reading_and_skip_grammar():
    assert cedict_gloss("中") == "within"  # the common word, not the proper noun (China)
    assert cedict_gloss("团队") == "team"
    assert cedict_gloss("創立") == "establish"  # Traditional headwords too
    assert cedict_gloss("了") is None and cedict_gloss("之") is None  # senses that describe grammar
    assert cedict_gloss("的") == "of"  # its first sense; inside a sentence jieba's particle tag leaves it out
    assert cedict_gloss("更", reading="geng4") == "more"
    assert cedict_gloss("更", reading="geng1") == "change or replace"
    assert cedict_gloss("创始人") == "creator"
    assert cedict_gloss("创始人", prefer=("founder",)) == "founder"  # a sense the lexicon agrees with
    assert cedict_gloss("阶跃星辰") is None


def test_a_sentence_word_by_word(lexicon):
    simplified = english_gloss("而阶跃星辰的创始人姜大昕也是在与ChatGPT的对话中", lexicon)
    traditional = english_gloss("而階躍星辰的創始人姜大昕也是在與ChatGPT的對話中", lexicon)
    assert simplified == traditional
    assert "StepFun founder Jiang Daxin" in simplified and "ChatGPT" in simplified
    assert not HAN.search(simplified)
    assert " of " not in f" {simplified} "  # 的 is left out, not glossed "of"


def test_numbers_dates_and_latin_text_inside_a_sentence(lexicon):
    gloss = english_gloss("一次預訓練成本約三四百萬美元,即便是成本更低的Yi-Lightning,在訓練時也用了2000張GPU,"
                          "耗時一個半月,花費三百多萬美元。", lexicon)
    assert "pretraining" in gloss  # a topic term CC-CEDICT lacks, from the lexicon
    assert "3 to 4 million US dollars" in gloss and "over 3 million US dollars" in gloss
    assert "one and a half months" in gloss and "2000 GPU" in gloss and "Yi-Lightning" in gloss
    assert gloss.endswith(".") and not HAN.search(gloss)
    assert "June 2019" in english_gloss("智谱成立于 2019 年 6 月", lexicon)
    assert english_gloss("早在2023年8月硅谷明星AI企業Character.AI", lexicon).endswith("Silicon Valley star AI company Character.AI")


def test_negations_stay_and_prepositions_keep_only_a_prepositional_sense(lexicon):
    assert "not yet abandon pretraining" in english_gloss("零一万物并未放弃预训练", lexicon)
    assert english_gloss("这不是", lexicon) == "this no"  # 不是 read bu2 shi4 by pypinyin, bu4 shi4 in CC-CEDICT
    assert english_gloss("阶跃星辰与零一万物", lexicon) == "StepFun and 01.AI"
    assert english_gloss("智谱成立于 2019 年 6 月", lexicon) == "Zhipu establish in June 2019"
    assert english_gloss("被收购", lexicon) == "purchase"  # 被's senses are "quilt" and a grammar note: left out


def test_an_unknown_word_is_shown_as_unknown_not_guessed(lexicon):
    tokens = gloss_tokens("王小川在乯乲", lexicon)
    assert [t.kind for t in tokens] == ["name", "dropped", "unknown", "unknown"]
    assert english_gloss("王小川在乯乲", lexicon) == "Wang Xiaochuan …"


def _answer(*citations, abstained=False):
    return Answer(question="", text="", abstained=abstained, citations=list(citations))


def _citation(text, span=None, doc="a.pdf", title="大模型“六小虎”的生存懸念", **layout):
    start = 100
    if span is None:
        return Citation(doc, start, start + len(text), text, 0.9, title=title, **layout)
    s = start + text.index(span)
    return Citation(doc, start, start + len(text), text, 0.9, title=title, span_start=s, span_end=s + len(span), **layout)


def _outside_quotes(english: str, *quoted: str) -> str:
    for text in quoted:
        english = english.replace(f"“{text}”", "")
    return english


def test_the_summary_says_where_each_citation_was_found(lexicon):
    first = _citation("次日,李開復迴應了零一萬物的變動:主要聚焦在預訓練團隊。", span="主要聚焦在預訓練團隊",
                      page=3, section="第二章 融资")
    second = _citation("早在2023年8月,Character.AI宣佈放棄預訓練。", page=5)
    third = _citation("百川智能在2023年4月成立。", doc="notes.txt", title="Notes")
    english = english_summary(_answer(first, second, third), "why did 01.AI give up pretraining?", None, lexicon)
    lines = english.splitlines()
    # the bold span word by word; of the rest of each quote only its names, numbers and dates (a whole sentence
    # glossed word by word read as nonsense: "also be ChatGPT talk within")
    assert lines[0] == ("Answer: **main focus pretraining team** (“主要聚焦在預訓練團隊”); the quote also names Kai-Fu Lee, "
                        "01.AI [1]; the quote names August 2023, Character.AI, pretraining [2]; the quote names Baichuan, "
                        "April 2023 [3]")
    assert lines[1] == ("Found in [1] [2] “大模型“六小虎”的生存懸念” (large model, six little tigers), file a.pdf: "
                        "[1] page 3, section “第二章 融资”; [2] page 5.")
    assert lines[2] == "Found in [3] Notes, file notes.txt."
    assert "CC-CEDICT" in lines[3] and "not a translation" in lines[3]
    assert not HAN.search(_outside_quotes(english, first.title, first.section, first.span_text))


def test_no_summary_for_other_languages_abstentions_or_english_sources(lexicon):
    cited = _citation("阶跃星辰的创始人姜大昕", span="姜大昕")
    assert english_summary(_answer(cited), "阶跃星辰的创始人是谁？", None, lexicon) is None
    assert english_summary(_answer(cited, abstained=True), "Who founded StepFun?", None, lexicon) is None
    assert english_summary(_answer(), "Who founded StepFun?", None, lexicon) is None
    english_source = _citation("StepFun was founded by Jiang Daxin.", doc="en.txt", title="Notes")
    assert english_summary(_answer(english_source), "Who founded StepFun?", None, lexicon) is None
    titled = english_summary(_answer(_citation("姜大昕", title="")), "Who?", {"a.pdf": "阶跃星辰"}.get, lexicon)
    assert "Found in [1] “阶跃星辰” (StepFun), file a.pdf." in titled  # the title from the index when the citation has none


# ------------------------------------------------------------------ the service on the built-in corpus

def _han_outside_quotes(answer) -> list[str]:
    quoted = [c.title for c in answer.citations] + [c.section for c in answer.citations if c.section]
    quoted += [c.span_text.strip() for c in answer.citations if c.span_text]
    return HAN.findall(_outside_quotes(answer.english, *quoted))


@pytest.mark.slow
def test_an_english_question_gets_the_founder_in_english(built_service):
    answer = built_service.ask("Who is the founder of StepFun?")
    assert not answer.abstained and "**姜大昕**" in answer.text  # the Chinese answer stays as it was
    first = answer.english.splitlines()[0]
    assert first.startswith("Answer: **Jiang Daxin** (“姜大昕”)") and "StepFun" in first
    assert "Found in [1] “国内大模型创业公司梳理（最佳拍档 视频字幕）”" in answer.english
    assert _han_outside_quotes(answer) == []
    assert answer.to_json_dict()["english"] == answer.english


@pytest.mark.slow
def test_who_founded_stepfun_names_in_english_what_the_cited_sentences_name(built_service, lexicon):
    answer = built_service.ask("Who founded StepFun?")
    assert not answer.abstained and answer.english.startswith("Answer: ")
    assert _han_outside_quotes(answer) == []
    for citation in answer.citations:  # every entity the quote names is named in English
        for group in lexicon.groups_in(citation.text, entities_only=True):
            assert english_name(next(n for n in group if HAN.search(n)), lexicon) in answer.english
        if "姜大昕" in citation.text:
            assert "Jiang Daxin" in answer.english


@pytest.mark.slow
def test_a_chinese_question_gets_no_english_line(built_service):
    answer = built_service.ask("阶跃星辰的创始人是谁？")
    assert not answer.abstained and answer.english == ""


@pytest.mark.slow
def test_qa_chat_prints_the_english_under_the_answer(built_service):
    from qa.chat import run_chat

    out = io.StringIO()
    run_chat(built_service, stdin=io.StringIO("Who is the founder of StepFun?\n"), stdout=out)
    lines = out.getvalue().splitlines()
    answer = next(i for i, line in enumerate(lines) if "**姜大昕**" in line)
    assert lines[answer + 1].startswith("Answer: ") and "Jiang Daxin" in lines[answer + 1]
    assert lines[answer + 2].startswith("Found in [1]")


def test_key_terms_are_said_once_without_the_source_punctuation(lexicon):
    """Seen in the app: Latin names kept the passage's ASCII comma ("Yi-Lightning,,")."""
    terms = key_terms("即便是成本更低的Yi-Lightning,在訓練時也用了2000張GPU,耗時一個半月,花費三百多萬美元。", lexicon)
    assert "Yi-Lightning" in terms and "GPU" in terms and "over 3 million US dollars" in terms
    assert not any(t.endswith((",", ";", ":")) for t in terms) and len(terms) == len(set(terms))
