// headnet/viz/chart.hpp: PNG charts for training results, drawn without any plotting library.
//
// A Canvas is an RGB raster with rectangles, lines and text; text comes from stb_easy_font (a
// bitmap font made of quads) drawn at an integer scale, and the image is encoded by
// stb_image_write (both from Debian's libstb-dev). On top of it: bar_chart (one bar per category,
// optional error bars), grouped_bar_chart (one bar per series within each category), line_chart and
// heatmap (a confusion matrix with its counts).
//
// This header compiles stb_image_write's implementation as static functions, so it may be included
// in several translation units of one program.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#ifndef STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_easy_font.h>
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "headnet/core/error.hpp"
#include "headnet/io/safetensors.hpp"

namespace headnet {
namespace viz {

struct Color {
  std::uint8_t r, g, b;
};

namespace palette {
constexpr Color white{255, 255, 255}, black{0, 0, 0}, grid{225, 225, 225}, axis{60, 60, 60};
inline Color series(std::size_t i) {
  static const Color colors[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                 {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};
  return colors[i % 8];
}
}  // namespace palette

class Canvas {
 public:
  Canvas(int width, int height, Color background = palette::white)
      : width_(width), height_(height), pixels_(std::size_t(width) * height * 3) {
    rect(0, 0, width, height, background);
  }
  int width() const { return width_; }
  int height() const { return height_; }

  void pixel(int x, int y, Color c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    std::uint8_t* p = &pixels_[(std::size_t(y) * width_ + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  // Filled rectangle [x0, x1) x [y0, y1).
  void rect(int x0, int y0, int x1, int y1, Color c) {
    for (int y = std::max(0, std::min(y0, y1)); y < std::min(height_, std::max(y0, y1)); ++y)
      for (int x = std::max(0, std::min(x0, x1)); x < std::min(width_, std::max(x0, x1)); ++x) pixel(x, y, c);
  }
  void line(double x0, double y0, double x1, double y1, Color c, int thickness = 1) {
    const int steps = int(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
    for (int i = 0; i <= steps; ++i) {
      const double t = double(i) / steps;
      const int x = int(std::lround(x0 + t * (x1 - x0))), y = int(std::lround(y0 + t * (y1 - y0)));
      rect(x - thickness / 2, y - thickness / 2, x - thickness / 2 + thickness, y - thickness / 2 + thickness, c);
    }
  }

  // Text with its top-left corner at (x, y); the font is 7 pixels high at scale 1.
  void text(int x, int y, const std::string& s, int scale = 2, Color c = palette::black) {
    std::vector<char> buffer(s.size() * 1200 + 256);  // a glyph takes up to ~15 quads of 64 bytes
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, &copy[0], nullptr, buffer.data(), int(buffer.size()));
    for (int q = 0; q < quads; ++q) {
      const float* v0 = reinterpret_cast<const float*>(buffer.data() + q * 64);
      const float* v2 = reinterpret_cast<const float*>(buffer.data() + q * 64 + 32);
      rect(x + int(v0[0] * scale), y + int(v0[1] * scale), x + int(v2[0] * scale), y + int(v2[1] * scale), c);
    }
  }
  static int text_width(const std::string& s, int scale = 2) {
    std::string copy = s;
    return stb_easy_font_width(&copy[0]) * scale;
  }
  void text_centered(int cx, int y, const std::string& s, int scale = 2, Color c = palette::black) {
    text(cx - text_width(s, scale) / 2, y, s, scale, c);
  }
  void text_right(int right, int y, const std::string& s, int scale = 2, Color c = palette::black) {
    text(right - text_width(s, scale), y, s, scale, c);
  }

  // Encodes the canvas as PNG and writes it atomically.
  void save_png(const std::string& path) const {
    std::string bytes;
    auto append = [](void* context, void* data, int size) {
      static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
    };
    if (!stbi_write_png_to_func(append, &bytes, width_, height_, 3, pixels_.data(), width_ * 3)) {
      throw Error("cannot encode PNG for '" + path + "'");
    }
    io::write_file_atomically(path, bytes);
  }

 private:
  int width_, height_;
  std::vector<std::uint8_t> pixels_;
};

// v with `decimals` digits after the point, as chart labels print numbers.
inline std::string fixed(double v, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  return buffer;
}

namespace detail {

// A "nice" tick step for a range, 1, 2 or 5 times a power of ten.
inline double nice_step(double range, int target_ticks) {
  if (!(range > 0)) return 1;
  const double raw = range / target_ticks, power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * power) return m * power;
  return 10 * power;
}

// Plot frame: title, y label, horizontal grid with tick labels; returns the plot rectangle.
struct Frame {
  int left, top, right, bottom;
  double y_min, y_max;
  double y(double v) const { return bottom - (v - y_min) / (y_max - y_min) * (bottom - top); }
};

inline Frame draw_frame(Canvas& c, const std::string& title, const std::string& y_label, double y_min, double y_max,
                        int bottom_margin) {
  Frame f{90, 70, c.width() - 30, c.height() - bottom_margin, y_min, y_max};
  c.text_centered(c.width() / 2, 18, title, 3);
  c.text(12, 48, y_label, 2, palette::axis);
  const double step = nice_step(y_max - y_min, 8);
  const int decimals = step >= 1 ? 0 : int(std::ceil(-std::log10(step)));
  for (double v = std::ceil(y_min / step) * step; v <= y_max + 1e-9; v += step) {
    const int y = int(f.y(v));
    c.rect(f.left, y, f.right, y + 1, palette::grid);
    c.text_right(f.left - 8, y - 6, fixed(v, decimals), 2, palette::axis);
  }
  c.rect(f.left, f.top, f.left + 2, f.bottom + 1, palette::axis);
  c.rect(f.left, f.bottom, f.right, f.bottom + 2, palette::axis);
  return f;
}

}  // namespace detail

// One series of bars, optionally with +-error whiskers, values annotated above the bars.
inline void bar_chart(const std::string& path, const std::string& title, const std::vector<std::string>& categories,
                      const std::vector<double>& values, const std::string& y_label, double y_max,
                      const std::vector<double>& errors = {}, int decimals = 1) {
  Canvas c(std::max(900, int(categories.size()) * 90 + 140), 560);
  auto f = detail::draw_frame(c, title, y_label, 0, y_max, 70);
  const double slot = double(f.right - f.left) / double(categories.size());
  for (std::size_t i = 0; i < categories.size(); ++i) {
    const int x0 = f.left + int(slot * i + slot * 0.15), x1 = f.left + int(slot * (i + 1) - slot * 0.15);
    const int y = int(f.y(std::min(values[i], y_max)));
    c.rect(x0, y, x1, f.bottom, palette::series(0));
    int label_y = y - 20;
    if (!errors.empty()) {
      const int cx = (x0 + x1) / 2;
      const int hi = int(f.y(std::min(y_max, values[i] + errors[i]))), lo = int(f.y(std::max(0.0, values[i] - errors[i])));
      c.rect(cx - 1, hi, cx + 2, lo, palette::black);
      c.rect(cx - 8, hi, cx + 9, hi + 2, palette::black);
      c.rect(cx - 8, lo, cx + 9, lo + 2, palette::black);
      label_y = std::min(label_y, hi - 20);
    }
    c.text_centered((x0 + x1) / 2, label_y, fixed(values[i], decimals), 2);
    c.text_centered((x0 + x1) / 2, f.bottom + 14, categories[i], 2);
  }
  c.save_png(path);
}

// Several series side by side within each category, with a legend; errors[s][i] optional.
inline void grouped_bar_chart(const std::string& path, const std::string& title,
                              const std::vector<std::string>& categories, const std::vector<std::string>& series,
                              const std::vector<std::vector<double>>& values, const std::string& y_label, double y_max,
                              const std::vector<std::vector<double>>& errors = {}) {
  Canvas c(std::max(1100, int(categories.size() * series.size()) * 22 + 200), 620);
  auto f = detail::draw_frame(c, title, y_label, 0, y_max, 110);
  const double slot = double(f.right - f.left) / double(categories.size());
  const double bar = slot * 0.8 / double(series.size());
  for (std::size_t i = 0; i < categories.size(); ++i) {
    for (std::size_t s = 0; s < series.size(); ++s) {
      const int x0 = f.left + int(slot * i + slot * 0.1 + bar * s), x1 = x0 + std::max(1, int(bar) - 1);
      c.rect(x0, int(f.y(std::min(values[s][i], y_max))), x1, f.bottom, palette::series(s));
      if (!errors.empty()) {
        const int cx = (x0 + x1) / 2;
        c.rect(cx, int(f.y(std::min(y_max, values[s][i] + errors[s][i]))), cx + 1,
               int(f.y(std::max(0.0, values[s][i] - errors[s][i]))), palette::black);
      }
    }
    c.text_centered(f.left + int(slot * (i + 0.5)), f.bottom + 12, categories[i], 2);
  }
  int x = f.left;
  for (std::size_t s = 0; s < series.size(); ++s) {  // legend under the axis labels
    c.rect(x, c.height() - 50, x + 18, c.height() - 32, palette::series(s));
    c.text(x + 24, c.height() - 48, series[s], 2);
    x += 24 + Canvas::text_width(series[s], 2) + 30;
  }
  c.save_png(path);
}

struct LineSeries {
  std::string name;
  std::vector<double> x, y;
};

inline void line_chart(const std::string& path, const std::string& title, const std::string& x_label,
                       const std::string& y_label, const std::vector<LineSeries>& series) {
  double x_min = 1e300, x_max = -1e300, y_max = -1e300;
  for (const auto& s : series) {
    for (double v : s.x) x_min = std::min(x_min, v), x_max = std::max(x_max, v);
    for (double v : s.y) y_max = std::max(y_max, v);
  }
  if (!(x_max > x_min)) x_max = x_min + 1;
  if (!(y_max > 0)) y_max = 1;
  Canvas c(1000, 560);
  auto f = detail::draw_frame(c, title, y_label, 0, y_max * 1.05, 80);
  auto px = [&](double v) { return f.left + (v - x_min) / (x_max - x_min) * (f.right - f.left); };
  const double step = detail::nice_step(x_max - x_min, 8);
  for (double v = std::ceil(x_min / step) * step; v <= x_max + 1e-9; v += step)
    c.text_centered(int(px(v)), f.bottom + 10, fixed(v, step >= 1 ? 0 : 1), 2, palette::axis);
  c.text_centered((f.left + f.right) / 2, f.bottom + 40, x_label, 2, palette::axis);
  for (std::size_t s = 0; s < series.size(); ++s) {
    for (std::size_t i = 1; i < series[s].x.size(); ++i)
      c.line(px(series[s].x[i - 1]), f.y(series[s].y[i - 1]), px(series[s].x[i]), f.y(series[s].y[i]),
             palette::series(s), 3);
    c.text(f.right - 260, f.top + 10 + 22 * int(s), series[s].name, 2, palette::series(s));
  }
  c.save_png(path);
}

// A square matrix as a heat map with each cell's count: rows are true classes, columns predictions.
inline void heatmap(const std::string& path, const std::string& title, const std::vector<std::string>& labels,
                    const std::vector<std::vector<std::int64_t>>& counts, const std::string& row_label,
                    const std::string& column_label) {
  const int n = int(labels.size()), cell = 64, left = 130, top = 90;
  Canvas c(left + n * cell + 40, top + n * cell + 90);
  c.text_centered(c.width() / 2, 18, title, 3);
  std::int64_t max_count = 1;
  for (const auto& row : counts)
    for (auto v : row) max_count = std::max(max_count, v);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const double t = double(counts[std::size_t(i)][std::size_t(j)]) / double(max_count);
      const Color fill{std::uint8_t(255 - 225 * t), std::uint8_t(255 - 155 * t), std::uint8_t(255 - 75 * t)};
      c.rect(left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1, fill);
      c.text_centered(left + j * cell + cell / 2, top + i * cell + cell / 2 - 7,
                      std::to_string(counts[std::size_t(i)][std::size_t(j)]), 2, t > 0.55 ? palette::white : palette::black);
    }
    c.text_right(left - 8, top + i * cell + cell / 2 - 7, labels[std::size_t(i)], 2);
    c.text_centered(left + i * cell + cell / 2, top + n * cell + 8, labels[std::size_t(i)], 2);
  }
  c.text_centered(left + n * cell / 2, top + n * cell + 40, column_label, 2, palette::axis);
  c.text(10, top - 26, row_label, 2, palette::axis);
  c.save_png(path);
}

}  // namespace viz
}  // namespace headnet
