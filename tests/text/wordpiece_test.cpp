// WordPieceTokenizer: hand-derived cases on a small vocabulary (the rules of
// include/attn/wordpiece.hpp, one test each), then BertTokenizer's own output
// on tests/golden/bert_tiny/vocab.txt (tests/golden/make_bert_golden.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attn/errors.hpp"
#include "attn/wordpiece.hpp"

namespace {

using attn::WordPieceTokenizer;
using Tokens = std::vector<std::string>;

WordPieceTokenizer small() {
  return WordPieceTokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "able",
                             "hello", "world", ",", "!", "cafe", "a", "##a", "##aa", "b", "##b", "中", "文",
                             "naive", "l", "##odz", "ł"});
}

TEST(WordPiece, GreedyLongestMatchFirstWithContinuations) {
  // "unaffable": "un" is the longest prefix in the vocabulary, then "##aff", then "##able".
  EXPECT_EQ(small().tokenize("unaffable"), (Tokens{"un", "##aff", "##able"}));
  // "aaa": longest first takes "a" (no "aaa"/"aa" word), then "##aa", not "##a" "##a".
  EXPECT_EQ(small().tokenize("aaa"), (Tokens{"a", "##aa"}));
  EXPECT_EQ(small().tokenize("ab"), (Tokens{"a", "##b"}));
}

TEST(WordPiece, AWordThatCannotBeCoveredIsOneUnk) {
  // "abc": "a", "##b", then no piece for "c": the whole word is [UNK], not "a ##b [UNK]".
  EXPECT_EQ(small().tokenize("abc hello"), (Tokens{"[UNK]", "hello"}));
  EXPECT_EQ(small().tokenize("zzz"), (Tokens{"[UNK]"}));
}

TEST(WordPiece, WordsLongerThan100CharactersAreUnk) {
  const std::string a100(100, 'a'), a101(101, 'a');
  // 100 a's: "a" then 49 × "##aa", then "##a".
  const Tokens t = small().tokenize(a100);
  ASSERT_EQ(t.size(), 51u);
  EXPECT_EQ(t.front(), "a");
  EXPECT_EQ(t[1], "##aa");
  EXPECT_EQ(t.back(), "##a");
  EXPECT_EQ(small().tokenize(a101), (Tokens{"[UNK]"}));
  // Characters, not bytes: 60 two-byte "ł" letters are 60 characters, under the limit.
  std::string l60;
  for (int i = 0; i < 60; ++i) l60 += "\xc5\x82";
  EXPECT_EQ(small().wordpiece(l60), (Tokens{"[UNK]"}));  // no "##ł": uncovered, but not for length
  EXPECT_EQ(small().basic_tokenize(l60).size(), 1u);
}

TEST(WordPiece, LowerCaseAccentsPunctuation) {
  EXPECT_EQ(small().tokenize("Hello, WORLD!"), (Tokens{"hello", ",", "world", "!"}));
  EXPECT_EQ(small().tokenize("Café NAÏVE"), (Tokens{"cafe", "naive"}));
  EXPECT_EQ(small().tokenize("cafe\xcc\x81"), (Tokens{"cafe"}));  // e + U+0301 (decomposed)
  // Ł has no decomposition: it lower-cases to ł and stays ł.
  EXPECT_EQ(small().tokenize("\xc5\x81odz"), (Tokens{"\xc5\x82", "##odz"}));
  EXPECT_EQ(small().basic_tokenize("a.b"), (Tokens{"a", ".", "b"}));
  EXPECT_EQ(small().basic_tokenize("x$y^z`"), (Tokens{"x", "$", "y", "^", "z", "`"}));  // ASCII symbols count
  EXPECT_EQ(small().basic_tokenize("\xc2\xbfqu\xc3\xa9?"), (Tokens{"\xc2\xbf", "que", "?"}));  // ¿qué?
  // NFD singletons and marks beyond Latin: ano teleia → middle dot (punctuation),
  // an ideographic tone mark is dropped, Й → й → и.
  EXPECT_EQ(small().basic_tokenize("a\xce\x87" "b"), (Tokens{"a", "\xc2\xb7", "b"}));
  EXPECT_EQ(small().basic_tokenize("a\xe3\x80\xaa" "b"), (Tokens{"ab"}));
  EXPECT_EQ(small().basic_tokenize("\xd0\x99"), (Tokens{"\xd0\xb8"}));
}

TEST(WordPiece, WhitespaceControlsAndCjk) {
  EXPECT_EQ(small().basic_tokenize(" a\tb\nc\r\xc2\xa0" "d\xe3\x80\x80" "e "), (Tokens{"a", "b", "c", "d", "e"}));
  // Controls (U+0000, U+200B, soft hyphen) are removed, joining their neighbours.
  EXPECT_EQ(small().basic_tokenize(std::string("a\0b", 3)), (Tokens{"ab"}));
  EXPECT_EQ(small().basic_tokenize("a\xe2\x80\x8b" "b c\xc2\xad" "d"), (Tokens{"ab", "cd"}));
  EXPECT_EQ(small().tokenize("a\xe4\xb8\xad\xe6\x96\x87" "b"), (Tokens{"a", "中", "文", "b"}));
  // An invalid UTF-8 byte reads as U+FFFD and is dropped.
  EXPECT_EQ(small().basic_tokenize("a\xff" "b"), (Tokens{"ab"}));
}

TEST(WordPiece, EncodeAddsClsSepAndTruncates) {
  const auto e = small().encode("Hello world", 512);
  EXPECT_EQ(e.tokens, (Tokens{"[CLS]", "hello", "world", "[SEP]"}));
  EXPECT_EQ(e.ids, (std::vector<int64_t>{2, 10, 11, 3}));
  const auto t = small().encode("hello world hello world", 4);
  EXPECT_EQ(t.tokens, (Tokens{"[CLS]", "hello", "world", "[SEP]"}));
  EXPECT_EQ(small().encode("", 8).tokens, (Tokens{"[CLS]", "[SEP]"}));
  EXPECT_THROW(small().encode("a", 1), attn::ValueError);
}

TEST(WordPiece, SpecialTokensInTheTextStayWhole) {
  EXPECT_EQ(small().tokenize("hello[MASK]world [SEP]"), (Tokens{"hello", "[MASK]", "world", "[SEP]"}));
  EXPECT_EQ(small().tokenize("[mask]"), (Tokens{"[UNK]", "[UNK]", "[UNK]"}));  // "[", "mask", "]" unknown pieces
}

TEST(WordPiece, Errors) {
  EXPECT_THROW(WordPieceTokenizer({}), attn::ValueError);
  EXPECT_THROW(WordPieceTokenizer({"a", "b"}), attn::ValueError);  // no [UNK]
  EXPECT_THROW(WordPieceTokenizer::from_vocab_file("/nonexistent/vocab.txt"), attn::IOError);
  EXPECT_THROW(small().id_to_token(-1), attn::ValueError);
  EXPECT_EQ(small().id_to_token(10), "hello");
  EXPECT_EQ(small().token_to_id("nope"), 1);
}

// A vocabulary is read whole, so its size is bounded first (issue 17,
// untrusted files): a file over 64 MiB (sparse here: no disk is used) and a
// device that never ends are IOErrors naming the path, not an exhausted memory.
TEST(WordPiece, OversizedOrEndlessVocabularyFilesAreRefused) {
  const auto path = std::filesystem::temp_directory_path() / "attn_wordpiece_huge_vocab.txt";
  {
    std::ofstream f(path, std::ios::binary);
    f << "[UNK]\n";
  }
  std::filesystem::resize_file(path, WordPieceTokenizer::kMaxVocabFileBytes + 1);
  try {
    (void)WordPieceTokenizer::from_vocab_file(path.string());
    ADD_FAILURE() << "no exception";
  } catch (const attn::IOError& e) {
    EXPECT_NE(std::string(e.what()).find("67108865 bytes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
  if (std::filesystem::exists("/dev/zero"))
    EXPECT_THROW((void)WordPieceTokenizer::from_vocab_file("/dev/zero"), attn::IOError);
}

TEST(WordPiece, MatchesBertTokenizerGolden) {
  std::ifstream f(std::string(ATTN_GOLDEN_DIR) + "/bert_golden.json");
  ASSERT_TRUE(f) << "bert_golden.json missing";
  const auto g = nlohmann::json::parse(f).at("wordpiece");
  const auto tok = WordPieceTokenizer::from_vocab_file(std::string(ATTN_GOLDEN_DIR) + "/bert_tiny/vocab.txt");
  const int64_t max_length = g.at("max_length").get<int64_t>();
  int n = 0;
  for (const auto& c : g.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    const auto e = tok.encode(text, max_length);
    EXPECT_EQ(e.tokens, c.at("tokens").get<Tokens>()) << "text: " << text;
    EXPECT_EQ(e.ids, c.at("ids").get<std::vector<int64_t>>()) << "text: " << text;
    ++n;
  }
  EXPECT_GE(n, 20);
}

}  // namespace
