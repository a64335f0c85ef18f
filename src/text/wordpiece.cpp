// wordpiece.cpp — BERT's basic tokenizer + WordPiece, as Hugging Face's
// BertTokenizer (and its fast twin) do it; the rules and the Unicode coverage
// are listed in include/attn/wordpiece.hpp. Text is handled as code points
// (char32_t); every table below is a plain range list, no ICU.
#include "attn/wordpiece.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "attn/errors.hpp"

namespace attn {

namespace {

// ---- UTF-8 ------------------------------------------------------------------------

// Decodes UTF-8; an invalid or truncated sequence, an overlong form or a
// surrogate gives U+FFFD for its first byte (which the cleaner then drops).
std::u32string decode_utf8(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = 0;
    char32_t cp = 0, min = 0;
    if (b < 0x80) { out.push_back(b); ++i; continue; }
    if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1F; min = 0x80; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0F; min = 0x800; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07; min = 0x10000; }
    bool ok = len > 0 && i + static_cast<size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      ok = (c & 0xC0) == 0x80;
      cp = (cp << 6) | (c & 0x3F);
    }
    ok = ok && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) { out.push_back(cp); i += static_cast<size_t>(len); }
    else { out.push_back(0xFFFD); ++i; }
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) out += static_cast<char>(cp);
  else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode_utf8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

bool in(char32_t c, char32_t lo, char32_t hi) { return c >= lo && c <= hi; }

// ---- character classes (BertTokenizer's _is_whitespace, _is_control, _is_punctuation) ----

// " ", \t, \n, \r and category Zs; U+2028/2029 too, which Python's str.split()
// (whitespace_tokenize) splits on.
bool is_whitespace(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0xA0 || c == 0x1680 || in(c, 0x2000, 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Categories Cc, Cf, Co (the cleaner drops them); \t \n \r count as whitespace.
bool is_control(char32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  return c < 0x20 || in(c, 0x7F, 0x9F) || c == 0xAD || in(c, 0x600, 0x605) || c == 0x61C || c == 0x6DD ||
         c == 0x70F || c == 0x180E || in(c, 0x200B, 0x200F) || in(c, 0x202A, 0x202E) || in(c, 0x2060, 0x2064) ||
         in(c, 0x2066, 0x206F) || c == 0xFEFF || in(c, 0xFFF9, 0xFFFB) || in(c, 0xE000, 0xF8FF) || c == 0x110BD ||
         in(c, 0x1D173, 0x1D17A) || c == 0xE0001 || in(c, 0xE0020, 0xE007F) || c >= 0xF0000;
}

// BERT counts every non-alphanumeric printable ASCII character as punctuation
// ($, +, ^, ` included), and beyond ASCII the categories P*.
bool is_punctuation(char32_t c) {
  if (in(c, 33, 47) || in(c, 58, 64) || in(c, 91, 96) || in(c, 123, 126)) return true;
  switch (c) {
    case 0xA1: case 0xA7: case 0xAB: case 0xB6: case 0xB7: case 0xBB: case 0xBF:  // ¡ § « ¶ · » ¿
      return true;
    default: break;
  }
  if (in(c, 0x2010, 0x2027)) return true;
  if (in(c, 0x2030, 0x205E)) return c != 0x2044 && c != 0x2052;  // ⁄ and ⁒ are math symbols
  if (in(c, 0x3001, 0x3003) || in(c, 0x3008, 0x3011) || in(c, 0x3014, 0x301F) || c == 0x3030 || c == 0x303D ||
      c == 0x30A0 || c == 0x30FB)
    return true;
  if (in(c, 0xFF01, 0xFF0F)) return c != 0xFF04 && c != 0xFF0B;  // ＄ ＋
  if (in(c, 0xFF1A, 0xFF20)) return !in(c, 0xFF1C, 0xFF1E);      // ＜ ＝ ＞
  if (in(c, 0xFF3B, 0xFF40)) return c != 0xFF3E && c != 0xFF40;  // ＾ ｀
  if (in(c, 0xFF5B, 0xFF65)) return c != 0xFF5C && c != 0xFF5E;  // ｜ ～
  return false;
}

// The CJK Unified Ideographs blocks BERT splits character by character.
bool is_cjk(char32_t c) {
  return in(c, 0x4E00, 0x9FFF) || in(c, 0x3400, 0x4DBF) || in(c, 0x20000, 0x2A6DF) || in(c, 0x2A700, 0x2B73F) ||
         in(c, 0x2B740, 0x2B81F) || in(c, 0x2B820, 0x2CEAF) || in(c, 0xF900, 0xFAFF) || in(c, 0x2F800, 0x2FA1F);
}

// ---- lower case and accents ------------------------------------------------------

// Appends the lower case of c (Python's str.lower() for the covered blocks).
void append_lower(std::u32string& out, char32_t c) {
  if (in(c, 'A', 'Z') || (in(c, 0xC0, 0xDE) && c != 0xD7)) { out.push_back(c + 0x20); return; }
  if (c == 0x130) { out.push_back('i'); out.push_back(0x307); return; }  // İ → i + combining dot above
  if (in(c, 0x100, 0x137) || in(c, 0x14A, 0x177)) { out.push_back(c % 2 == 0 ? c + 1 : c); return; }
  if (in(c, 0x139, 0x148) || in(c, 0x179, 0x17E)) { out.push_back(c % 2 == 1 ? c + 1 : c); return; }
  if (c == 0x178) { out.push_back(0xFF); return; }
  // Greek: Ά Έ Ή Ί Ό Ύ Ώ, Α–Ω, Ϊ Ϋ
  if (c == 0x386) { out.push_back(0x3AC); return; }
  if (in(c, 0x388, 0x38A)) { out.push_back(c + 0x25); return; }
  if (c == 0x38C) { out.push_back(0x3CC); return; }
  if (in(c, 0x38E, 0x38F)) { out.push_back(c + 0x3F); return; }
  if (in(c, 0x391, 0x3AB) && c != 0x3A2) { out.push_back(c + 0x20); return; }
  // Cyrillic: Ѐ–Џ, А–Я
  if (in(c, 0x400, 0x40F)) { out.push_back(c + 0x50); return; }
  if (in(c, 0x410, 0x42F)) { out.push_back(c + 0x20); return; }
  out.push_back(c);
}

// Base letters of Latin-1 U+00C0–U+00FF and Latin Extended-A U+0100–U+017F
// under NFD; '.' where the letter has no canonical decomposition.
constexpr char kLatin1Base[] = "AAAAAA.CEEEEIIII.NOOOOO..UUUUY..aaaaaa.ceeeeiiii.nooooo..uuuuy.y";
constexpr char kLatinExtABase[] =
    "AaAaAaCcCcCcCcDd..EeEeEeEeEeGgGgGgGgHh..IiIiIiIiI...JjKk.LlLlLl....NnNnNn...OoOoOo..RrRrRrSsSsSs"
    "SsTtTt..UuUuUuUuUuUuWwYyYZzZzZz.";
static_assert(sizeof(kLatin1Base) == 64 + 1 && sizeof(kLatinExtABase) == 128 + 1);

// NFD + drop combining marks (category Mn), for one code point: 0 = dropped.
char32_t strip_accent(char32_t c) {
  // Combining marks (category Mn) of the covered blocks: diacritics, ideographic tone marks, kana voicing.
  if (in(c, 0x300, 0x36F) || in(c, 0x302A, 0x302D) || in(c, 0x3099, 0x309A)) return 0;
  if (c == 0x387) return 0xB7;  // Greek ano teleia: NFD makes it a middle dot (punctuation)
  if (c == 0x37E) return ';';   // Greek question mark: NFD makes it a semicolon
  if (in(c, 0xC0, 0xFF) && kLatin1Base[c - 0xC0] != '.') return static_cast<char32_t>(kLatin1Base[c - 0xC0]);
  if (in(c, 0x100, 0x17F) && kLatinExtABase[c - 0x100] != '.')
    return static_cast<char32_t>(kLatinExtABase[c - 0x100]);
  switch (c) {  // Greek and Cyrillic letters with an accent, breve or diaeresis
    case 0x3AC: return 0x3B1; case 0x3AD: return 0x3B5; case 0x3AE: return 0x3B7; case 0x3AF: return 0x3B9;
    case 0x3CC: return 0x3BF; case 0x3CD: return 0x3C5; case 0x3CE: return 0x3C9; case 0x3CA: return 0x3B9;
    case 0x3CB: return 0x3C5; case 0x390: return 0x3B9; case 0x3B0: return 0x3C5;
    case 0x450: case 0x451: return 0x435;  // ѐ ё → е
    case 0x453: return 0x433;              // ѓ → г
    case 0x457: return 0x456;              // ї → і
    case 0x45C: return 0x43A;              // ќ → к
    case 0x45D: case 0x439: return 0x438;  // ѝ й → и
    case 0x45E: return 0x443;              // ў → у
    default: return c;
  }
}

std::vector<std::u32string> split_whitespace(const std::u32string& s) {
  std::vector<std::u32string> out;
  std::u32string cur;
  for (char32_t c : s) {
    if (is_whitespace(c)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, bool do_lower_case, std::string unk_token,
                                       int64_t max_input_chars_per_word)
    : vocab_(std::move(vocab)), do_lower_case_(do_lower_case), unk_token_(std::move(unk_token)),
      max_chars_(max_input_chars_per_word) {
  if (vocab_.empty()) throw ValueError("WordPieceTokenizer: the vocabulary is empty");
  // A token listed twice keeps its last line's id, as BertTokenizer's load_vocab does.
  for (size_t i = 0; i < vocab_.size(); ++i) ids_[vocab_[i]] = static_cast<int64_t>(i);
  if (!ids_.count(unk_token_))
    throw ValueError("WordPieceTokenizer: the vocabulary has no unknown token '" + unk_token_ + "'");
  for (const char* s : {"[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]"})
    if (ids_.count(s)) specials_.emplace_back(s);
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::string& path, bool do_lower_case) {
  // Bounded before reading: a real vocab.txt is a few MB at most (BERT's
  // 30k tokens: 230 kB; 250k-token multilingual vocabularies: ~5 MB), and
  // getline would otherwise take a whole multi-GB file, or a device that
  // never ends (/dev/zero), into memory.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw IOError("WordPieceTokenizer: the vocabulary " + path + " is not a regular file");
  if (!ec && std::filesystem::is_regular_file(status)) {
    const auto bytes = std::filesystem::file_size(path, ec);
    if (!ec && bytes > kMaxVocabFileBytes)
      throw IOError("WordPieceTokenizer: the vocabulary " + path + " has " + std::to_string(bytes) +
                    " bytes; at most " + std::to_string(kMaxVocabFileBytes) + " (64 MiB) are read");
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw IOError("WordPieceTokenizer: cannot open the vocabulary " + path);
  std::vector<std::string> vocab;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocab.push_back(line);
  }
  if (f.bad()) throw IOError("WordPieceTokenizer: error reading " + path);
  if (vocab.empty()) throw ValueError("WordPieceTokenizer: the vocabulary " + path + " is empty");
  return WordPieceTokenizer(std::move(vocab), do_lower_case);
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(const std::string& text) const {
  // Clean: drop NUL, U+FFFD and controls; whitespace becomes ' '; CJK ideographs get spaces around.
  std::u32string clean;
  for (char32_t c : decode_utf8(text)) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      clean.push_back(' ');
    } else if (is_cjk(c)) {
      clean.push_back(' ');
      clean.push_back(c);
      clean.push_back(' ');
    } else {
      clean.push_back(c);
    }
  }
  std::vector<std::string> out;
  for (const std::u32string& word : split_whitespace(clean)) {
    std::u32string w;
    if (do_lower_case_) {
      std::u32string lower;
      for (char32_t c : word) append_lower(lower, c);
      for (char32_t c : lower)
        if (char32_t s = strip_accent(c)) w.push_back(s);
    } else {
      w = word;
    }
    std::u32string cur;
    for (char32_t c : w) {
      if (is_punctuation(c)) {
        if (!cur.empty()) out.push_back(encode_utf8(cur));
        cur.clear();
        out.push_back(encode_utf8(std::u32string(1, c)));
      } else {
        cur.push_back(c);
      }
    }
    if (!cur.empty()) out.push_back(encode_utf8(cur));
  }
  return out;
}

std::vector<std::string> WordPieceTokenizer::wordpiece(const std::string& word) const {
  const std::u32string chars = decode_utf8(word);
  if (static_cast<int64_t>(chars.size()) > max_chars_) return {unk_token_};
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < chars.size()) {
    // Longest match first: shrink the end until the piece is in the vocabulary.
    size_t end = chars.size();
    std::string found;
    while (start < end) {
      std::string piece = (start > 0 ? "##" : "") + encode_utf8(chars.substr(start, end - start));
      if (ids_.count(piece)) {
        found = std::move(piece);
        break;
      }
      --end;
    }
    if (found.empty()) return {unk_token_};  // one uncovered piece makes the whole word unknown
    pieces.push_back(std::move(found));
    start = end;
  }
  return pieces;
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  auto add_segment = [&](const std::string& segment) {
    for (const std::string& word : basic_tokenize(segment))
      for (std::string& piece : wordpiece(word)) out.push_back(std::move(piece));
  };
  // Special tokens written in the text stay whole (leftmost, then longest match).
  size_t pos = 0, seg = 0;
  while (pos < text.size()) {
    const std::string* hit = nullptr;
    if (text[pos] == '[')
      for (const std::string& s : specials_)
        if (text.compare(pos, s.size(), s) == 0 && (!hit || s.size() > hit->size())) hit = &s;
    if (!hit) {
      ++pos;
      continue;
    }
    add_segment(text.substr(seg, pos - seg));
    out.push_back(*hit);
    pos += hit->size();
    seg = pos;
  }
  add_segment(text.substr(seg));
  return out;
}

WordPieceTokenizer::Encoding WordPieceTokenizer::encode(const std::string& text, int64_t max_length) const {
  if (max_length < 2)
    throw ValueError("WordPieceTokenizer::encode: max_length = " + std::to_string(max_length) +
                     ", expected >= 2 (room for [CLS] and [SEP])");
  for (const char* s : {"[CLS]", "[SEP]"})
    if (!ids_.count(s)) throw ValueError(std::string("WordPieceTokenizer::encode: the vocabulary has no ") + s);
  Encoding e;
  std::vector<std::string> body = tokenize(text);
  if (static_cast<int64_t>(body.size()) > max_length - 2) body.resize(static_cast<size_t>(max_length - 2));
  e.tokens.reserve(body.size() + 2);
  e.tokens.push_back("[CLS]");
  for (auto& t : body) e.tokens.push_back(std::move(t));
  e.tokens.push_back("[SEP]");
  for (const auto& t : e.tokens) e.ids.push_back(token_to_id(t));
  return e;
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  const auto it = ids_.find(token);
  return it != ids_.end() ? it->second : ids_.at(unk_token_);
}

const std::string& WordPieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw ValueError("WordPieceTokenizer::id_to_token: id " + std::to_string(id) + " outside [0, " +
                     std::to_string(vocab_size()) + ")");
  return vocab_[static_cast<size_t>(id)];
}

}  // namespace attn
