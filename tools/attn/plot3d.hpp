// tools/attn/plot3d.hpp — arrows from the origin in a 3-D perspective view,
// drawn with cairo to a PNG: the picture of notes 001, where the six 3-d word
// embeddings are plotted as vectors with their words (`attn demo --plot`).
#pragma once

#include <array>
#include <string>
#include <vector>

namespace attn::cli {

struct Plot3D {
  enum Kind { kInput, kContext };
  struct Arrow {
    std::array<double, 3> tip;  ///< the vector, drawn from the origin
    std::string label;
    Kind kind = kInput;
  };
  std::string title;
  std::vector<Arrow> arrows;
  int highlight = -1;               ///< index of an input arrow drawn in the accent colour (the query)
  std::vector<std::string> legend;  ///< [0]: inputs, [1]: context vectors
  double azimuth_deg = -60, elevation_deg = 25;  ///< matplotlib's default view, a little lower
};

/// Writes `plot` as a PNG (900×720). Throws attn::IOError if cairo cannot write it.
void render_plot3d(const Plot3D& plot, const std::string& path);

/// render_plot3d when plot3d.cpp is linked in (it sets this from a static
/// initialiser), else null: the Python module compiles demo.cpp without cairo
/// (python/CMakeLists.txt), and its `python -m attn demo --plot` then says so.
using Plot3DRenderer = void (*)(const Plot3D&, const std::string&);
inline Plot3DRenderer& plot3d_renderer() {
  static Plot3DRenderer renderer = nullptr;
  return renderer;
}

}  // namespace attn::cli
