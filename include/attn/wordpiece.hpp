// attn/wordpiece.hpp — BERT's tokenizer: text → WordPiece tokens → ids,
// the rules of Hugging Face's BertTokenizer (do_lower_case = true).
//
//   1. split off special tokens written in the text ("[CLS]", "[SEP]",
//      "[MASK]", "[PAD]", "[UNK]" if in the vocabulary): kept whole;
//   2. basic tokenizer: drop NUL, U+FFFD and control characters, turn every
//      whitespace character into a space; put spaces around CJK ideographs;
//      split on whitespace; lower-case each word and strip its accents
//      (NFD, then drop the combining marks); split off every punctuation
//      character as a token of its own;
//   3. WordPiece: each word greedily, longest match first, against the
//      vocabulary, pieces after the first prefixed "##"; a word that cannot be
//      covered, or is longer than 100 characters, becomes "[UNK]" whole;
//   4. encode(): "[CLS]" + tokens + "[SEP]", truncated to max_length (tokens
//      cut from the end, [SEP] kept), as tokenizer(text, truncation=True).
//
// Unicode coverage (no ICU): text is UTF-8 (an invalid byte reads as U+FFFD
// and is dropped). Lower-casing: ASCII, Latin-1, Latin Extended-A, Greek and
// Cyrillic (basic blocks) capitals. Accent stripping: every precomposed letter of Latin-1
// and Latin Extended-A (À → a, Ž → z, İ → i), Greek and Cyrillic letters with
// accents (ά → α, й → и, ё → е), and the combining marks U+0300–U+036F (of
// already decomposed text), U+302A–U+302D and U+3099–U+309A; letters without a
// canonical decomposition stay (ß, æ, ø, ł, đ, œ), as in NFD. Checked against
// transformers' AutoTokenizer for every code point of U+0020–U+017F, Greek
// U+0386–U+03CE, Cyrillic U+0400–U+045F, U+2000–U+206F, U+3000–U+303F and
// U+FF01–U+FF65 (python/tests/test_embed_cli.py). Punctuation: ASCII's
// (what BERT counts: every non-alphanumeric printable ASCII character),
// Latin-1's (¡ § « ¶ · » ¿), General Punctuation U+2010–U+205E and CJK/fullwidth
// punctuation. Whitespace: ASCII, NBSP, U+1680, U+2000–U+200A, U+2028/2029,
// U+202F, U+205F, U+3000. Other scripts pass through unchanged (their letters
// are looked up as written).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace attn {

class WordPieceTokenizer {
 public:
  /// `vocab`: one token per entry, id = position (vocab.txt's line order).
  /// Throws ValueError if the vocabulary is empty or lacks `unk_token`.
  explicit WordPieceTokenizer(std::vector<std::string> vocab, bool do_lower_case = true,
                              std::string unk_token = "[UNK]", int64_t max_input_chars_per_word = 100);

  /// Reads vocab.txt (one token per line; "\r\n" accepted). Throws IOError
  /// naming the file if it cannot be read, is not a regular file or is
  /// larger than kMaxVocabFileBytes; ValueError as the constructor.
  static WordPieceTokenizer from_vocab_file(const std::string& path, bool do_lower_case = true);
  static constexpr uint64_t kMaxVocabFileBytes = uint64_t{64} << 20;

  /// Step 2: the basic tokenizer's words and punctuation (no WordPiece).
  std::vector<std::string> basic_tokenize(const std::string& text) const;
  /// Step 3 on one word (no splitting): its pieces, or {"[UNK]"}.
  std::vector<std::string> wordpiece(const std::string& word) const;
  /// Steps 1–3: the tokens of `text`, without [CLS]/[SEP].
  std::vector<std::string> tokenize(const std::string& text) const;

  struct Encoding {
    std::vector<std::string> tokens;  ///< "[CLS]", ..., "[SEP]"
    std::vector<int64_t> ids;         ///< their ids, same length
  };
  /// Step 4. max_length >= 2 (ValueError otherwise).
  Encoding encode(const std::string& text, int64_t max_length = 512) const;

  /// The id of `token`, or the id of unk_token if it is not in the vocabulary.
  int64_t token_to_id(const std::string& token) const;
  /// Throws ValueError for an id outside [0, vocab_size).
  const std::string& id_to_token(int64_t id) const;
  bool contains(const std::string& token) const { return ids_.count(token) > 0; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }

 private:
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  bool do_lower_case_;
  std::string unk_token_;
  int64_t max_chars_;
  std::vector<std::string> specials_;  // written in the text, kept whole
};

}  // namespace attn
