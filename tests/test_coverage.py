"""English question units and how much of them a Chinese text renders (qa/coverage.py), on hand cases."""

from qa.aliases import AliasLexicon
from qa.coverage import absent_units, coverage, question_units, unit_covered
from qa.text import normalize

ALIASES = AliasLexicon(entities=(("01.AI", "零一万物", "零一萬物"),), terms=(("found", "founded", "成立", "创立"),))


def test_a_question_is_split_into_names_and_rendered_words():
    units = question_units("why did 01.AI give up pretraining?", ALIASES)
    assert [u.english for u in units] == ["01.AI", "give up", "pretraining"]
    assert units[0].entity and "零一万物" in units[0].chinese
    assert "放弃" in units[1].chinese  # CC-CEDICT read backwards, every headword of the sense
    assert units[2].chinese == ()  # CC-CEDICT has no "pretraining"


def test_a_unit_is_covered_by_a_rendering_in_either_script_or_by_its_english_word():
    give_up = question_units("why did 01.AI give up pretraining?", ALIASES)[1]
    assert unit_covered(give_up, "李開復說零一萬物不會放棄")  # Traditional text, Simplified rendering
    assert not unit_covered(give_up, "零一萬物成立於2023年")
    founded = question_units("When was 01.AI founded?", ALIASES)[1]
    assert founded.english == "founded" and unit_covered(founded, "零一万物成立于2023年")
    gpu = question_units("How many GPU cards did 01.AI use?", ALIASES)
    assert any(unit_covered(u, "用了2000张GPU") for u in gpu if u.english.startswith("gpu"))


def test_coverage_is_the_share_of_units_the_text_renders():
    units = question_units("why did 01.AI give up pretraining?", ALIASES)
    assert coverage(units, "零一万物放弃了") == 2 / 3  # "pretraining" has no rendering: counted, not covered
    assert coverage(units, "零一万物放弃了", translatable_only=True) == 1.0
    assert coverage([], "anything") == 1.0


def test_a_question_whose_every_word_is_absent_from_the_corpus_is_reported():
    corpus = normalize("百川智能的创始人王小川在公司成立时感慨万分。")
    aliases = AliasLexicon(entities=(("Baichuan", "百川", "百川智能"),))
    missing = absent_units("Where is Baichuan headquartered?", corpus, aliases)
    assert [u.english for u in missing] == ["headquartered"]  # the name is there; what is asked of it is not
    assert absent_units("When was Baichuan founded?", corpus, aliases) == []  # 成立 renders "founded"
    assert absent_units("Who is Baichuan?", corpus, aliases) == []  # only a name: nothing to judge
