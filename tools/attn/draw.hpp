// tools/attn/draw.hpp — the small cairo helpers every picture of the `attn`
// command uses (heatmap, demo --plot, train, why), kept in one place so the
// pictures share a look.
#pragma once

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>
#include <string>

#include <attn/atomic_file.hpp>
#include <attn/errors.hpp>
#include <cairo.h>

namespace attn::cli::draw {

/// Writes `surface` as a PNG to `path` through attn::AtomicFileWriter, so a
/// failure (cairo's, a full disk, a file-size limit) keeps any file already
/// there. Throws IOError "<what>: ..." naming the path. The caller still owns
/// (and destroys) the surface.
inline void write_png(cairo_surface_t* surface, const std::string& path, const std::string& what) {
  cairo_status_t status = cairo_surface_status(surface);
  if (status != CAIRO_STATUS_SUCCESS)
    throw IOError(what + ": cannot write " + path + ": " + cairo_status_to_string(status));
  std::optional<AtomicFileWriter> out;
  try {
    out.emplace(path);
  } catch (const Error& e) {
    throw IOError(what + ": " + e.what());
  }
  // cairo calls back with the PNG's bytes; an exception must not cross its C frames.
  struct Sink {
    AtomicFileWriter* out;
    std::string error;
  } sink{&*out, ""};
  status = cairo_surface_write_to_png_stream(
      surface,
      [](void* closure, const unsigned char* data, unsigned int n) -> cairo_status_t {
        auto* s = static_cast<Sink*>(closure);
        try {
          s->out->write(data, n);
          return CAIRO_STATUS_SUCCESS;
        } catch (const std::exception& e) {
          s->error = e.what();
          return CAIRO_STATUS_WRITE_ERROR;
        }
      },
      &sink);
  if (!sink.error.empty()) throw IOError(what + ": " + sink.error);
  if (status != CAIRO_STATUS_SUCCESS)
    throw IOError(what + ": cannot write " + path + ": " + cairo_status_to_string(status));
  try {
    out->commit();
  } catch (const Error& e) {
    throw IOError(what + ": " + e.what());
  }
}

/// Draws `s` so that its ink box's point (align_x, align_y) — each 0 = left /
/// top, 0.5 = centre, 1 = right / bottom — lands on (x, y).
inline void text_at(cairo_t* cr, const std::string& s, double x, double y, double align_x, double align_y) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_move_to(cr, x - e.x_bearing - align_x * e.width, y - e.y_bearing - align_y * e.height);
  cairo_show_text(cr, s.c_str());
}

/// DejaVu Sans at `size` points.
inline void font(cairo_t* cr, double size, bool bold = false, bool italic = false) {
  cairo_select_font_face(cr, "DejaVu Sans", italic ? CAIRO_FONT_SLANT_ITALIC : CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

/// Viridis (matplotlib's default map: perceptually uniform, readable in grey
/// and by colour-blind readers), 9 anchors linearly interpolated; t in [0, 1].
inline void viridis(double t, double rgb[3]) {
  static const double k[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                 {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8.0;
  const int i = std::min(7, static_cast<int>(t));
  const double f = t - i;
  for (int c = 0; c < 3; ++c) rgb[c] = (k[i][c] * (1 - f) + k[i + 1][c] * f) / 255.0;
}

}  // namespace attn::cli::draw
