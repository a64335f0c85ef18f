// attn/tensor.hpp — a small strided N-d array, just enough for attention.
//
// Tensor<T> is what PyTorch users expect of torch.Tensor's storage model:
//   * a shared buffer plus (offset, shape, strides), so views are free:
//     transpose(1, 2) turns [batch, seq, heads, head_dim] into
//     [batch, heads, seq, head_dim] without a copy;
//   * copying a Tensor copies the handle, not the data (like torch);
//     clone() makes a deep copy;
//   * broadcasting is an expand() view with stride 0 on the broadcast dims.
// T is float, double or bool (masks). Elements are read and written with
// t(i, j, k, l) or t.at({i, j, k, l}); both check the rank, at() also the bounds.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "attn/detail/size_math.hpp"
#include "attn/errors.hpp"

namespace attn {

using Shape = std::vector<int64_t>;

/// Row-major (C-contiguous) strides of `shape` (sizes >= 0). Throws
/// ShapeError when they do not fit in 64 bits: the product of the sizes,
/// zeros counted as 1, is more than 2^63 - 1 (PyTorch refuses the same
/// shapes: "Stride calculation overflowed").
inline Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    if (i > 0 && !detail::checked_mul(s, std::max<int64_t>(shape[i], 1), s))
      throw ShapeError("shape " + shape_str(shape) + " has strides beyond 2^63 - 1 elements");
  }
  return strides;
}

/// Product of the sizes; 1 for a 0-d shape. Throws ShapeError when it does
/// not fit in int64_t (it never wraps around to a small count).
inline int64_t numel_of(const Shape& shape) { return detail::size_product(shape, "shape"); }

template <class T>
class Tensor {
 public:
  using value_type = T;

  /// An undefined tensor (no storage). defined() is false; used for "not given".
  Tensor() = default;

  /// A zero-filled contiguous tensor of `shape`.
  /// Errors: ShapeError for a negative size, or sizes whose element count,
  /// strides or byte count do not fit in 64 bits; ResourceError (naming the
  /// shape and the bytes) when the memory cannot be allocated.
  explicit Tensor(Shape shape) : shape_(std::move(shape)) { allocate("Tensor", true); }

  /// A contiguous tensor of `shape` whose elements are not initialised (like
  /// torch.empty): for an output that a kernel overwrites entirely, where
  /// zero-filling would be a second pass over memory (5% of a short-sequence
  /// attention call). Read an element only after writing it. Errors as Tensor(shape).
  static Tensor uninitialized(Shape shape) {
    Tensor t;
    t.shape_ = std::move(shape);
    t.allocate("Tensor::uninitialized", false);
    return t;
  }

  /// A contiguous tensor of `shape` holding `values` in row-major order.
  Tensor(Shape shape, std::vector<T> values) : Tensor(std::move(shape)) {
    if (static_cast<int64_t>(values.size()) != numel())
      throw ShapeError("Tensor: " + std::to_string(values.size()) + " values given for shape " +
                       shape_str(shape_) + " (" + std::to_string(numel()) + " elements)");
    std::copy(values.begin(), values.end(), storage_.get());
  }

  /// A tensor of `shape` filled with `value`.
  static Tensor full(Shape shape, T value) {
    Tensor t(std::move(shape));
    std::fill(t.storage_.get(), t.storage_.get() + t.numel(), value);
    return t;
  }

  /// A view of memory the caller owns (e.g. a numpy array); the caller keeps it
  /// alive. Strides are in elements; empty `strides` means contiguous.
  static Tensor from_blob(T* data, Shape shape, Shape strides = {}) {
    check_sizes("Tensor::from_blob", shape);
    Tensor t;
    t.shape_ = std::move(shape);
    t.strides_ = strides.empty() ? contiguous_strides(t.shape_) : std::move(strides);
    if (t.strides_.size() != t.shape_.size())
      throw ShapeError("Tensor::from_blob: strides " + shape_str(t.strides_) +
                       " do not match shape " + shape_str(t.shape_));
    // An empty buffer's data() may be null (an empty std::vector, numpy or
    // DLPack array): the view is still a defined, empty tensor, not "not
    // given" (a null storage_); it owns one element that nothing reads.
    if (data == nullptr && numel_of(t.shape_) == 0)
      t.storage_ = std::shared_ptr<T[]>(new T[1]());
    else
      t.storage_ = std::shared_ptr<T[]>(data, [](T*) {});
    return t;
  }

  // ---- shape --------------------------------------------------------------
  bool defined() const { return static_cast<bool>(storage_); }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t size(int64_t d) const { return shape_[wrap_dim(d)]; }
  int64_t stride(int64_t d) const { return strides_[wrap_dim(d)]; }
  int64_t numel() const { return numel_of(shape_); }
  bool is_contiguous() const {
    int64_t expected = 1;
    for (size_t i = shape_.size(); i-- > 0;) {
      if (shape_[i] != 1 && strides_[i] != expected) return false;
      expected *= shape_[i];
    }
    return true;
  }

  // ---- element access -----------------------------------------------------
  /// Pointer to element (0, ..., 0). Walk it with strides().
  T* data() const { return storage_.get() + offset_; }

  /// t(i, j, ...) with exactly dim() indices; no bounds check (see at()).
  template <class... I>
  T& operator()(I... idx) const {
    static_assert((std::is_integral_v<I> && ...), "indices must be integers");
    constexpr size_t n = sizeof...(I);
    const int64_t ids[n > 0 ? n : 1] = {static_cast<int64_t>(idx)...};
    int64_t off = offset_;
    for (size_t i = 0; i < n; ++i) off += ids[i] * strides_[i];
    return storage_[off];
  }

  /// Bounds-checked access; throws ShapeError naming the bad index.
  T& at(std::initializer_list<int64_t> idx) const { return at(std::span<const int64_t>(idx.begin(), idx.size())); }
  T& at(std::span<const int64_t> idx) const {
    if (static_cast<int64_t>(idx.size()) != dim())
      throw ShapeError("Tensor::at: " + std::to_string(idx.size()) + " indices for a tensor of shape " +
                       shape_str(shape_));
    int64_t off = offset_;
    for (size_t i = 0; i < idx.size(); ++i) {
      if (idx[i] < 0 || idx[i] >= shape_[i])
        throw ShapeError("Tensor::at: index " + std::to_string(idx[i]) + " out of range for dim " +
                         std::to_string(i) + " of shape " + shape_str(shape_));
      off += idx[i] * strides_[i];
    }
    return storage_[off];
  }

  /// Element `flat` in row-major order (works for any strides).
  T& flat(int64_t flat) const {
    int64_t off = offset_;
    for (size_t i = shape_.size(); i-- > 0;) {
      off += (flat % shape_[i]) * strides_[i];
      flat /= shape_[i];
    }
    return storage_[off];
  }

  /// All elements in row-major order, copied into a vector.
  std::vector<T> to_vector() const {
    std::vector<T> v(static_cast<size_t>(numel()));
    for (int64_t i = 0; i < numel(); ++i) v[static_cast<size_t>(i)] = flat(i);
    return v;
  }

  // ---- views (share storage) ----------------------------------------------
  Tensor transpose(int64_t a, int64_t b) const {
    Tensor t = *this;
    std::swap(t.shape_[wrap_dim(a)], t.shape_[wrap_dim(b)]);
    std::swap(t.strides_[wrap_dim(a)], t.strides_[wrap_dim(b)]);
    return t;
  }

  /// Elements [start, end) of dim `d`.
  Tensor slice(int64_t d, int64_t start, int64_t end) const {
    d = wrap_dim(d);
    if (start < 0 || end < start || end > shape_[d])
      throw ShapeError("Tensor::slice: [" + std::to_string(start) + ", " + std::to_string(end) +
                       ") out of range for dim " + std::to_string(d) + " of shape " + shape_str(shape_));
    Tensor t = *this;
    t.offset_ += start * strides_[d];
    t.shape_[d] = end - start;
    return t;
  }

  /// Index `i` of dim `d`, dropping that dim.
  Tensor select(int64_t d, int64_t i) const {
    d = wrap_dim(d);
    Tensor t = slice(d, i, i + 1);
    t.shape_.erase(t.shape_.begin() + d);
    t.strides_.erase(t.strides_.begin() + d);
    return t;
  }

  /// Broadcast view to `target` (NumPy rules: align on the right, size-1 or
  /// missing dims are repeated with stride 0). Throws ShapeError otherwise.
  Tensor expand(const Shape& target, const char* what = "tensor") const {
    // A view costs no memory, but its element count must still fit: every
    // loop over it, and any copy of it, counts its elements in int64_t.
    check_sizes((std::string(what) + ": expand").c_str(), target);
    if (dim() > static_cast<int64_t>(target.size()))
      throw ShapeError(std::string(what) + " has shape " + shape_str(shape_) +
                       ", which cannot broadcast to " + shape_str(target));
    Tensor t = *this;
    const size_t lead = target.size() - shape_.size();
    t.shape_ = target;
    t.strides_.assign(target.size(), 0);
    for (size_t i = 0; i < shape_.size(); ++i) {
      const int64_t s = shape_[i], want = target[lead + i];
      if (s == want)
        t.strides_[lead + i] = strides_[i];
      else if (s != 1)
        throw ShapeError(std::string(what) + " has shape " + shape_str(shape_) +
                         ", which cannot broadcast to " + shape_str(target));
    }
    return t;
  }

  /// Same elements, new shape; a view when contiguous, else a copy.
  Tensor reshape(Shape shape) const {
    int64_t infer = -1, known = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == -1 && infer < 0) infer = static_cast<int64_t>(i);
      else if (shape[i] < 0 || !detail::checked_mul(known, shape[i], known))
        throw ShapeError("Tensor::reshape: cannot view shape " + shape_str(shape_) + " as " + shape_str(shape));
    }
    if (infer >= 0) shape[static_cast<size_t>(infer)] = known ? numel() / known : 0;
    if (numel_of(shape) != numel())
      throw ShapeError("Tensor::reshape: cannot view shape " + shape_str(shape_) + " as " + shape_str(shape));
    Tensor t = is_contiguous() ? *this : contiguous();
    t.shape_ = std::move(shape);
    t.strides_ = contiguous_strides(t.shape_);
    return t;
  }

  // ---- copies ---------------------------------------------------------------
  Tensor clone() const {
    Tensor t(shape_);
    T* out = t.data();
    const int64_t n = numel();
    if (is_contiguous()) {
      std::copy(data(), data() + n, out);
      return t;
    }
    // Row by row along the last dim: one flat() index per row, not per element.
    const int64_t last = shape_.back(), step = strides_.back();
    for (int64_t r = 0; r * last < n; ++r) {
      const T* src = &flat(r * last);
      for (int64_t j = 0; j < last; ++j) out[r * last + j] = src[j * step];
    }
    return t;
  }
  Tensor contiguous() const { return is_contiguous() ? *this : clone(); }

  /// Element-wise conversion (float <-> double, ...); always a new tensor.
  template <class U>
  Tensor<U> to() const {
    Tensor<U> t(shape_);
    U* out = t.data();
    for (int64_t i = 0; i < numel(); ++i) out[i] = static_cast<U>(flat(i));
    return t;
  }

  /// Copy `src` (same shape) into this tensor's elements, through any strides.
  void copy_(const Tensor& src) const {
    if (src.shape_ != shape_)
      throw ShapeError("Tensor::copy_: source shape " + shape_str(src.shape_) + " does not match " +
                       shape_str(shape_));
    for (int64_t i = 0; i < numel(); ++i) flat(i) = src.flat(i);
  }
  void fill_(T value) const {
    for (int64_t i = 0; i < numel(); ++i) flat(i) = value;
  }

 private:
  // Sizes >= 0, and a product that fits (numel_of throws otherwise).
  static void check_sizes(const char* fn, const Shape& shape) {
    for (int64_t s : shape)
      if (s < 0) throw ShapeError(std::string(fn) + ": negative size in shape " + shape_str(shape));
    int64_t n;
    if (!detail::checked_product(shape, n))
      throw ShapeError(std::string(fn) + ": shape " + shape_str(shape) + " has more than 2^63 - 1 elements");
  }

  // Storage for shape_ (contiguous): every count checked before the
  // allocation, and an allocation the system refuses reported as what it
  // was (a ResourceError naming the shape and bytes), not as std::bad_alloc.
  void allocate(const char* fn, bool zero) {
    check_sizes(fn, shape_);
    strides_ = contiguous_strides(shape_);
    const int64_t n = std::max<int64_t>(numel_of(shape_), 1);
    int64_t bytes;
    if (!detail::checked_bytes(n, static_cast<int64_t>(sizeof(T)), bytes))
      throw ShapeError(std::string(fn) + ": shape " + shape_str(shape_) + " of " + std::to_string(sizeof(T)) +
                       "-byte elements needs more than 2^63 - 1 bytes");
    try {
      storage_ = std::shared_ptr<T[]>(zero ? new T[static_cast<size_t>(n)]() : new T[static_cast<size_t>(n)]);
    } catch (const std::bad_alloc&) {
      throw ResourceError(std::string(fn) + ": cannot allocate " + std::to_string(bytes) + " bytes for shape " +
                          shape_str(shape_) + " (" + std::to_string(sizeof(T)) + " bytes per element): out of memory");
    }
  }

  size_t wrap_dim(int64_t d) const {
    const int64_t n = dim();
    if (d < -n || d >= n)
      throw ShapeError("Tensor: dim " + std::to_string(d) + " out of range for shape " + shape_str(shape_));
    return static_cast<size_t>(d < 0 ? d + n : d);
  }

  std::shared_ptr<T[]> storage_;
  int64_t offset_ = 0;
  Shape shape_;
  Shape strides_;
};

}  // namespace attn
