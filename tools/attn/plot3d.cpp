// tools/attn/plot3d.cpp — see plot3d.hpp.
//
// The view: the data box [0, R]³ (R = the largest coordinate rounded up to
// 0.2, at least 1) is centred on the origin of the camera frame and seen from
// the direction d = (cos e·cos a, cos e·sin a, sin e), a the azimuth and e the
// elevation, as matplotlib's 3-D axes are. For a point p (box centre c):
//   X = (p − c)·r,  Y = (p − c)·u,  Z = (p − c)·d     r = (−sin a, cos a, 0), u = d × r
// and the perspective divide f = D / (D − Z) with the camera at distance D
// (2.6 box sizes: a mild perspective, parallel edges converge a little).
// The three panes behind the data (the ones whose outward side faces away from
// the camera) are filled and gridded; arrows are drawn far-to-near.
#include "plot3d.hpp"

#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <attn/errors.hpp>

#include "draw.hpp"
#include "print.hpp"

namespace attn::cli {
namespace {

using draw::text_at;
using draw::font;

using Vec3 = std::array<double, 3>;

constexpr int kWidth = 900, kHeight = 720;

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

struct Camera {
  Vec3 d, r, u, c;
  double dist, scale, cx, cy;

  Camera(double azimuth_deg, double elevation_deg, double R) {
    const double a = azimuth_deg * M_PI / 180, e = elevation_deg * M_PI / 180;
    d = {std::cos(e) * std::cos(a), std::cos(e) * std::sin(a), std::sin(e)};
    r = {-std::sin(a), std::cos(a), 0};
    u = {-std::sin(e) * std::cos(a), -std::sin(e) * std::sin(a), std::cos(e)};  // d × r
    c = {R / 2, R / 2, R / 2};
    dist = 2.6 * R;
    scale = 315.0 / R;
    cx = kWidth / 2.0 - 20;
    cy = kHeight / 2.0 + 32;
  }
  Vec3 rel(const Vec3& p) const { return {p[0] - c[0], p[1] - c[1], p[2] - c[2]}; }
  double depth(const Vec3& p) const { return dot(rel(p), d); }  // larger = nearer the camera
  void project(const Vec3& p, double& sx, double& sy) const {
    const Vec3 q = rel(p);
    const double f = dist / (dist - dot(q, d));
    sx = cx + scale * dot(q, r) * f;
    sy = cy - scale * dot(q, u) * f;
  }
};

void move_to(cairo_t* cr, const Camera& cam, const Vec3& p) {
  double x, y;
  cam.project(p, x, y);
  cairo_move_to(cr, x, y);
}
void line_to(cairo_t* cr, const Camera& cam, const Vec3& p) {
  double x, y;
  cam.project(p, x, y);
  cairo_line_to(cr, x, y);
}

struct Colour {
  double r, g, b;
};
constexpr Colour kInputColour{0.29, 0.42, 0.62};    // slate blue: the words
constexpr Colour kQueryColour{0.05, 0.30, 0.75};    // strong blue: the query's input vector
constexpr Colour kContextColour{0.87, 0.37, 0.05};  // orange: its context vector

// The panes behind the data: for each axis, the face at 0 or at R whose outside faces away from the camera.
void draw_box(cairo_t* cr, const Camera& cam, double R, double step) {
  const int n = static_cast<int>(std::lround(R / step));
  for (int axis = 0; axis < 3; ++axis) {
    const double at = cam.d[static_cast<size_t>(axis)] > 0 ? 0.0 : R;  // back face along this axis
    const int a1 = (axis + 1) % 3, a2 = (axis + 2) % 3;
    auto pt = [&](double s, double t) {
      Vec3 p{};
      p[static_cast<size_t>(axis)] = at;
      p[static_cast<size_t>(a1)] = s;
      p[static_cast<size_t>(a2)] = t;
      return p;
    };
    // fill
    cairo_set_source_rgb(cr, axis == 2 ? 0.945 : 0.925, axis == 2 ? 0.945 : 0.925, axis == 2 ? 0.955 : 0.94);
    move_to(cr, cam, pt(0, 0));
    line_to(cr, cam, pt(R, 0));
    line_to(cr, cam, pt(R, R));
    line_to(cr, cam, pt(0, R));
    cairo_close_path(cr);
    cairo_fill(cr);
    // grid
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, 1.2);
    for (int k = 1; k < n; ++k) {
      move_to(cr, cam, pt(k * step, 0));
      line_to(cr, cam, pt(k * step, R));
      move_to(cr, cam, pt(0, k * step));
      line_to(cr, cam, pt(R, k * step));
    }
    cairo_stroke(cr);
  }
}

// Ticks and names on three front-ish edges: x along y = front, z = 0; y along
// x = front, z = 0; z up the leftmost vertical edge.
void draw_axes(cairo_t* cr, const Camera& cam, double R, double step) {
  const double fy = cam.d[1] > 0 ? R : 0.0;  // the y of the front face
  const double fx = cam.d[0] > 0 ? R : 0.0;
  const int n = static_cast<int>(std::lround(R / step));
  struct Axis {
    Vec3 from, dir, out;  // edge start, unit direction, outward offset for labels
    std::string name;
  };
  // The vertical edge farthest left on screen carries the z axis.
  Vec3 zedge{0, 0, 0};
  double best = 1e9;
  for (double x : {0.0, R})
    for (double y : {0.0, R}) {
      double sx, sy;
      cam.project({x, y, 0}, sx, sy);
      if (sx < best) best = sx, zedge = {x, y, 0};
    }
  const Axis axes[3] = {
      {{0, fy, 0}, {1, 0, 0}, {0, fy == 0 ? -1.0 : 1.0, 0}, "dim 0"},
      {{fx, 0, 0}, {0, 1, 0}, {fx == 0 ? -1.0 : 1.0, 0, 0}, "dim 1"},
      {zedge, {0, 0, 1}, {zedge[0] == 0 ? -1.0 : 1.0, zedge[1] == 0 ? -1.0 : 1.0, 0}, "dim 2"},
  };
  for (const Axis& ax : axes) {
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_set_line_width(cr, 1.0);
    move_to(cr, cam, ax.from);
    line_to(cr, cam, {ax.from[0] + R * ax.dir[0], ax.from[1] + R * ax.dir[1], ax.from[2] + R * ax.dir[2]});
    cairo_stroke(cr);
    font(cr, 12);
    for (int k = 0; k <= n; ++k) {
      const double t = k * step;
      const Vec3 p{ax.from[0] + t * ax.dir[0], ax.from[1] + t * ax.dir[1], ax.from[2] + t * ax.dir[2]};
      const double o = 0.035 * R, lo = 0.11 * R;
      const Vec3 q{p[0] + o * ax.out[0], p[1] + o * ax.out[1], p[2] + o * ax.out[2]};
      const Vec3 l{p[0] + lo * ax.out[0], p[1] + lo * ax.out[1], p[2] + lo * ax.out[2]};
      move_to(cr, cam, p);
      line_to(cr, cam, q);
      cairo_stroke(cr);
      double sx, sy;
      cam.project(l, sx, sy);
      text_at(cr, num(t, 1), sx, sy, 0.5, 0.5);
    }
    const double mid = R / 2, lo = 0.25 * R;
    const Vec3 l{ax.from[0] + mid * ax.dir[0] + lo * ax.out[0], ax.from[1] + mid * ax.dir[1] + lo * ax.out[1],
                 ax.from[2] + mid * ax.dir[2] + lo * ax.out[2]};
    double sx, sy;
    cam.project(l, sx, sy);
    font(cr, 14, false, true);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    text_at(cr, ax.name, sx, sy, 0.5, 0.5);
  }
}

void draw_arrow(cairo_t* cr, const Camera& cam, const Vec3& tip, Colour col, double width) {
  double x0, y0, x1, y1;
  cam.project({0, 0, 0}, x0, y0);
  cam.project(tip, x1, y1);
  const double dx = x1 - x0, dy = y1 - y0, len = std::hypot(dx, dy);
  if (len < 1e-6) return;
  const double ux = dx / len, uy = dy / len, head = std::min(16.0, 0.3 * len), half = head * 0.42;
  cairo_set_source_rgb(cr, col.r, col.g, col.b);
  cairo_set_line_width(cr, width);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x1 - ux * head * 0.8, y1 - uy * head * 0.8);
  cairo_stroke(cr);
  cairo_move_to(cr, x1, y1);
  cairo_line_to(cr, x1 - ux * head - uy * half, y1 - uy * head + ux * half);
  cairo_line_to(cr, x1 - ux * head + uy * half, y1 - uy * head - ux * half);
  cairo_close_path(cr);
  cairo_fill(cr);
}

// A dotted line from a tip down to the floor (z = 0) and a small mark there:
// shows where the vector stands, which a single 2-D view otherwise hides.
void draw_drop_line(cairo_t* cr, const Camera& cam, const Vec3& tip, Colour col) {
  const double dashes[] = {2.0, 3.0};
  cairo_set_dash(cr, dashes, 2, 0);
  cairo_set_source_rgba(cr, col.r, col.g, col.b, 0.55);
  cairo_set_line_width(cr, 1.0);
  move_to(cr, cam, tip);
  line_to(cr, cam, {tip[0], tip[1], 0});
  cairo_stroke(cr);
  cairo_set_dash(cr, nullptr, 0, 0);
  double x, y;
  cam.project({tip[0], tip[1], 0}, x, y);
  cairo_arc(cr, x, y, 2.2, 0, 2 * M_PI);
  cairo_fill(cr);
}

struct Box {
  double x0, y0, x1, y1;
  bool overlaps(const Box& o) const { return x0 < o.x1 && o.x0 < x1 && y0 < o.y1 && o.y0 < y1; }
};

void draw_scene(cairo_t* cr, const Plot3D& plot) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);

  double m = 1.0;
  for (const auto& a : plot.arrows)
    for (double v : a.tip) m = std::max(m, std::fabs(v));
  const double step = 0.2, R = std::ceil(m / step - 1e-9) * step;
  const Camera cam(plot.azimuth_deg, plot.elevation_deg, R);

  draw_box(cr, cam, R, step);
  draw_axes(cr, cam, R, step);

  // Negative coordinates would leave the box; clamp the drawing, not the data.
  std::vector<size_t> order(plot.arrows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return cam.depth(plot.arrows[a].tip) < cam.depth(plot.arrows[b].tip); });
  auto colour_of = [&](size_t i) {
    if (plot.arrows[i].kind == Plot3D::kContext) return kContextColour;
    return static_cast<int>(i) == plot.highlight ? kQueryColour : kInputColour;
  };
  for (size_t i : order) draw_drop_line(cr, cam, plot.arrows[i].tip, colour_of(i));
  for (size_t i : order) {
    const bool strong = plot.arrows[i].kind == Plot3D::kContext || static_cast<int>(i) == plot.highlight;
    draw_arrow(cr, cam, plot.arrows[i].tip, colour_of(i), strong ? 3.0 : 2.2);
  }
  // Origin marker.
  double ox, oy;
  cam.project({0, 0, 0}, ox, oy);
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_arc(cr, ox, oy, 3, 0, 2 * M_PI);
  cairo_fill(cr);

  // Labels right of each tip; one that would cover an earlier label moves down
  // (journey and starts nearly coincide in the notes' embedding).
  std::vector<Box> placed;
  for (size_t i = 0; i < plot.arrows.size(); ++i) {
    const auto& a = plot.arrows[i];
    const bool strong = a.kind == Plot3D::kContext || static_cast<int>(i) == plot.highlight;
    font(cr, 15, strong);
    double x, y;
    cam.project(a.tip, x, y);
    cairo_text_extents_t e;
    cairo_text_extents(cr, a.label.c_str(), &e);
    Box b{x + 9, y - 16, x + 9 + e.x_advance + 4, y + 2};
    if (a.kind == Plot3D::kContext) b = {x - 9 - e.x_advance - 4, y - 16, x - 9, y + 2};  // left of its tip
    for (int tries = 0; tries < 8; ++tries) {
      bool clash = false;
      for (const Box& p : placed) clash = clash || b.overlaps(p);
      if (!clash) break;
      b.y0 += 17;
      b.y1 += 17;
    }
    placed.push_back(b);
    const Colour c = colour_of(i);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.75);
    cairo_rectangle(cr, b.x0 - 2, b.y0, b.x1 - b.x0 + 2, b.y1 - b.y0 + 2);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, c.r * 0.85, c.g * 0.85, c.b * 0.85);
    cairo_move_to(cr, b.x0, b.y1 - 4);
    cairo_show_text(cr, a.label.c_str());
  }

  // Title and legend.
  cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
  font(cr, 18, true);
  text_at(cr, plot.title, 24, 18, 0, 0);
  font(cr, 13);
  cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
  text_at(cr, "Each arrow is a word's 3-d embedding vector, from the origin; dotted lines drop to the floor (dim 2 = 0).",
          24, 46, 0, 0);
  const Colour lc[2] = {kInputColour, kContextColour};
  double ly = 80;
  for (size_t k = 0; k < plot.legend.size() && k < 2; ++k, ly += 24) {
    cairo_set_source_rgb(cr, lc[k].r, lc[k].g, lc[k].b);
    cairo_set_line_width(cr, 3);
    cairo_move_to(cr, 28, ly);
    cairo_line_to(cr, 60, ly);
    cairo_stroke(cr);
    cairo_move_to(cr, 66, ly);
    cairo_line_to(cr, 56, ly - 5);
    cairo_line_to(cr, 56, ly + 5);
    cairo_close_path(cr);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    font(cr, 14);
    text_at(cr, plot.legend[k], 76, ly, 0, 0.5);
  }
}

}  // namespace

// Makes render_plot3d reachable from demo.cpp through plot3d_renderer().
static const bool kPlot3DRegistered = (plot3d_renderer() = &render_plot3d, true);

void render_plot3d(const Plot3D& plot, const std::string& path) {
  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, kWidth, kHeight);
  cairo_t* cr = cairo_create(surface);
  draw_scene(cr, plot);
  cairo_destroy(cr);
  std::exception_ptr failed;
  try {
    draw::write_png(surface, path, "--plot");
  } catch (...) {
    failed = std::current_exception();
  }
  cairo_surface_destroy(surface);
  // Free cairo's and fontconfig's caches (LeakSanitizer would report them), as heatmap.cpp does.
  cairo_debug_reset_static_data();
  FcFini();
  if (failed) std::rethrow_exception(failed);
}

}  // namespace attn::cli
