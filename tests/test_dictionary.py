"""The dictionary route of English retrieval (qa/dictionary.py): English words -> Chinese BM25 terms."""

from qa.dictionary import agent_nouns, cedict_terms, dictionary_terms, name_terms, pinyin_map, reverse_cedict


def test_cc_cedict_read_backwards_gives_the_chinese_words_of_english_content_words():
    assert "主教" in cedict_terms("When was he appointed bishop?")
    assert "上海" in cedict_terms("Which road in Shanghai?")
    assert "经纬" in cedict_terms("What are the longitude and latitude?")  # a phrase beats its words


def test_function_words_and_question_words_give_no_terms():
    assert cedict_terms("What is it and who was there?") == []


def test_plural_and_past_forms_find_the_base_entry():
    assert "主教" in cedict_terms("How many bishops?")
    assert set(cedict_terms("Who founded it?")) & {"创建", "创立", "建立", "缔造"}


def test_romanized_names_match_the_corpus_words_read_that_way():
    pinyin = pinyin_map(["范廷颂", "百川", "姜大昕", "主教", "成立了"])  # 成立了: 3 characters, kept; not a name here
    assert pinyin["jiangdaxin"] == ("姜大昕",)
    terms, matched = name_terms("Did Jiang Daxin meet Fan Tingsong in Baichuan?", pinyin)
    assert terms == ["姜大昕", "范廷颂", "百川"] and matched == ["Jiang", "Daxin", "Fan", "Tingsong", "Baichuan"]
    assert name_terms("where is baichuan?", pinyin) == ([], [])  # lower case is not taken for a name


def test_a_matched_name_is_not_also_translated_word_by_word():
    class Index:  # what index_pinyin_map reads: the passages
        chunks = [type("C", (), {"text": "范廷颂被任命为主教。"})()]

        def count(self):
            return 1

    terms = dictionary_terms("When was Fan Tingsong appointed bishop?", Index())
    assert terms[0] == "范廷颂" and "主教" in terms
    assert "扇子" not in terms  # "Fan" was the name, not the thing that fans


def test_english_questions_search_their_dictionary_terms_with_bm25(built_service):
    from qa.retriever import HybridRetriever

    index = built_service.current_index()
    retriever = HybridRetriever(index, built_service.embedder, built_service.aliases, built_service.settings)
    query = retriever.sparse_query("Who founded StepFun?")
    assert "阶跃星辰" in query  # the alias lexicon
    assert set(query.split()) & {"创建", "创立", "建立", "缔造"}  # the dictionary
    assert "创始人" in query.split()  # a "who" question also asks for the doer: founder -> 创始人 (alias lexicon)
    assert retriever.sparse_query("阶跃星辰的创始人是谁？") == built_service.aliases.expand("阶跃星辰的创始人是谁？")


def test_who_questions_also_look_up_the_doer_of_their_verb():
    known = {"founder", "inventor", "creator", "director"}.__contains__
    assert agent_nouns("Who founded StepFun?", known) == ["founder"]
    assert agent_nouns("Who invented paper and who directed the film?", known) == ["inventor", "director"]
    assert agent_nouns("Who created Kimi?", known) == ["creator"]
    assert agent_nouns("When was StepFun founded?", known) == []  # not a "who" question: the date, not the doer
    assert agent_nouns("Who painted it?", known) == []  # "painter" is not known here: nothing made up


def test_commoner_headwords_come_first():
    # "founder" has eight CC-CEDICT headwords; jieba's counts put the everyday 创始人 among the three kept
    assert "创始人" in reverse_cedict()["founder"]


def test_a_who_question_counts_a_sentence_naming_the_doer_as_covering_its_verb(built_service):
    from qa.verifier import question_concepts

    founded = next(c for c in question_concepts("Who founded MiniMax?", built_service.aliases).all if "founded" in c)
    assert {"成立", "创始人"} <= founded  # "MiniMax創始人閆俊傑" covers it as well as "MiniMax 成立"
    when = next(c for c in question_concepts("When was MiniMax founded?", built_service.aliases).all if "founded" in c)
    assert "创始人" not in when  # a date question: the founding, not the founder
