// tools/attn/print.hpp — tables of numbers for the terminal, and the same
// numbers as JSON. Shared by every subcommand so they all print alike:
// 4 decimals, as PyTorch prints the lecture notes' tensors.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include <attn/tensor.hpp>
#include <nlohmann/json.hpp>

namespace attn::cli {

/// "0.1385"; non-finite values as "nan", "inf", "-inf" (what the overflow
/// demonstration is about, so they must print plainly on every platform).
std::string num(double v, int decimals = 4);

/// Right-aligns `s` in `width` columns (ASCII only: the widths are bytes).
std::string pad(const std::string& s, int width);

/// One table row: a left label column, then the numbers of a 1-d tensor
/// (or of `values`), each right-aligned in `width` columns.
void print_row(std::ostream& os, const std::string& label, int label_width, const std::vector<double>& values,
               int width = 9, int decimals = 4);

/// A header row of column names, aligned with print_row.
void print_header(std::ostream& os, const std::string& label, int label_width, const std::vector<std::string>& cols,
                  int width = 9);

/// A 2-d tensor as a table with row and column labels.
void print_matrix(std::ostream& os, const Tensor<float>& m, const std::vector<std::string>& row_labels,
                  const std::vector<std::string>& col_labels, int label_width, int width = 9);

/// The row-major elements of a 1-d tensor as doubles.
std::vector<double> values_of(const Tensor<float>& t);

/// A float as a JSON number that prints as the float's shortest decimal
/// (0.1385f → 0.1385, not 0.13850000500679016); non-finite → null, since
/// JSON has no NaN or infinity.
nlohmann::ordered_json json_number(float v);

/// A tensor of any rank as nested JSON arrays (a 0-d tensor as a number).
nlohmann::ordered_json to_json(const Tensor<float>& t);

/// JSON for people too: objects indented, arrays of numbers on one line, so a
/// [6, 6] matrix reads as 6 lines. Keys keep their insertion order.
std::string pretty_json(const nlohmann::ordered_json& j, int indent = 2);

/// j as JSON text, as j.dump(indent) (−1: one line) writes it, except that
/// invalid UTF-8 in a string — a --text or --prompt typed in another
/// encoding — becomes U+FFFD instead of nlohmann's type_error 316, which
/// reached the user as "attn: unexpected error" (found by fuzz/cli_fuzzer.cpp).
/// Every JSON the command prints goes through here (or pretty_json, which does).
template <class Json>
std::string dump_json(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace attn::cli
