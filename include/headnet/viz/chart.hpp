// headnet/viz/chart.hpp: PNG charts for training results, drawn without any plotting library.
//
// A Canvas is an RGB raster with rectangles, lines and text; text comes from stb_easy_font (a
// bitmap font made of quads) drawn at an integer scale, and the image is encoded by
// stb_image_write (both from Debian's libstb-dev). On top of it: bar_chart (one bar per category,
// optional error bars), grouped_bar_chart (one bar per series within each category), line_chart and
// heatmap (a confusion matrix with its counts). Every chart is written twice: as the PNG asked for
// and as an SVG beside it (same name, .svg), whose text is real text (crisp at any zoom, searchable)
// placed and sized as in the PNG: the Canvas records each rectangle, line and text as an SVG element
// while it rasterises them (pixel() alone, for photographs, is raster-only).
//
// Category labels never overlap: each gets the width of its slot, and a label that does not fit is
// wrapped at spaces onto up to three lines, and a word that still does not fit is cut with "..."
// (detail::fit_label; tests/test_charts.cpp checks the boxes with long labels).
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

/// An RGB colour.
struct Color {
  std::uint8_t r;  ///< red
  std::uint8_t g;  ///< green
  std::uint8_t b;  ///< blue
};

namespace palette {
constexpr Color white{255, 255, 255};  ///< backgrounds
constexpr Color black{0, 0, 0};  ///< text
constexpr Color grid{225, 225, 225};  ///< grid lines
constexpr Color axis{60, 60, 60};  ///< axes
/// The i-th series colour (matplotlib's tab10, cycling).
inline Color series(std::size_t i) {
  static const Color colors[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                 {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};
  return colors[i % 8];
}
}  // namespace palette

/// An RGB raster with lines, rectangles and text, saved as PNG with an SVG twin.
class Canvas {
 public:
  /// A width x height canvas filled with `background`.
  Canvas(int width, int height, Color background = palette::white)
      : width_(width), height_(height), pixels_(std::size_t(width) * height * 3) {
    rect(0, 0, width, height, background);
  }
  /// The width in pixels.
  int width() const { return width_; }
  /// The height in pixels.
  int height() const { return height_; }

  /// Sets one pixel (ignored outside the canvas).
  void pixel(int x, int y, Color c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    std::uint8_t* p = &pixels_[(std::size_t(y) * width_ + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  /// Filled rectangle [x0, x1) x [y0, y1).
  void rect(int x0, int y0, int x1, int y1, Color c) {
    if (record_) {
      svg_ += "<rect x=\"" + std::to_string(std::min(x0, x1)) + "\" y=\"" + std::to_string(std::min(y0, y1)) + "\" width=\"" +
              std::to_string(std::abs(x1 - x0)) + "\" height=\"" + std::to_string(std::abs(y1 - y0)) + "\" fill=\"" + hex(c) + "\"/>\n";
    }
    for (int y = std::max(0, std::min(y0, y1)); y < std::min(height_, std::max(y0, y1)); ++y)
      for (int x = std::max(0, std::min(x0, x1)); x < std::min(width_, std::max(x0, x1)); ++x) pixel(x, y, c);
  }
  /// A straight line of `thickness` pixels.
  void line(double x0, double y0, double x1, double y1, Color c, int thickness = 1) {
    const bool was_recording = record_;
    if (record_) {
      char b[200];
      std::snprintf(b, sizeof b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%d\" stroke-linecap=\"round\"/>\n",
                    x0, y0, x1, y1, hex(c).c_str(), thickness);
      svg_ += b;
      record_ = false;  // the rectangles that rasterise the line are not separate elements
    }
    const int steps = int(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
    for (int i = 0; i <= steps; ++i) {
      const double t = double(i) / steps;
      const int x = int(std::lround(x0 + t * (x1 - x0))), y = int(std::lround(y0 + t * (y1 - y0)));
      rect(x - thickness / 2, y - thickness / 2, x - thickness / 2 + thickness, y - thickness / 2 + thickness, c);
    }
    record_ = was_recording;
  }

  /// Text with its top-left corner at (x, y); the font is 7 pixels high at scale 1.
  void text(int x, int y, const std::string& s, int scale = 2, Color c = palette::black) {
    if (record_ && !s.empty()) {
      // Monospace text stretched to the bitmap font's width, its baseline where the bitmap's is.
      svg_ += "<text x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y + 7 * scale) + "\" font-size=\"" +
              std::to_string(9 * scale) + "\" textLength=\"" + std::to_string(text_width(s, scale)) +
              "\" lengthAdjust=\"spacingAndGlyphs\" fill=\"" + hex(c) + "\">" + escape(s) + "</text>\n";
    }
    const bool was_recording = record_;
    record_ = false;
    std::vector<char> buffer(s.size() * 1200 + 256);  // a glyph takes up to ~15 quads of 64 bytes
    std::string copy = s;
    const int quads = stb_easy_font_print(0, 0, &copy[0], nullptr, buffer.data(), int(buffer.size()));
    for (int q = 0; q < quads; ++q) {
      const float* v0 = reinterpret_cast<const float*>(buffer.data() + q * 64);
      const float* v2 = reinterpret_cast<const float*>(buffer.data() + q * 64 + 32);
      rect(x + int(v0[0] * scale), y + int(v0[1] * scale), x + int(v2[0] * scale), y + int(v2[1] * scale), c);
    }
    record_ = was_recording;
  }
  /// The width of `s` in pixels at `scale`.
  static int text_width(const std::string& s, int scale = 2) {
    std::string copy = s;
    return stb_easy_font_width(&copy[0]) * scale;
  }
  /// Text centred on x = cx.
  void text_centered(int cx, int y, const std::string& s, int scale = 2, Color c = palette::black) {
    text(cx - text_width(s, scale) / 2, y, s, scale, c);
  }
  /// Text ending at x = right.
  void text_right(int right, int y, const std::string& s, int scale = 2, Color c = palette::black) {
    text(right - text_width(s, scale), y, s, scale, c);
  }

  /// Encodes the canvas as PNG and writes it atomically.
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

  /// The same drawing as SVG (rectangles, lines and text; not pixel()), written atomically.
  void save_svg(const std::string& path) const {
    const std::string w = std::to_string(width_), h = std::to_string(height_);
    io::write_file_atomically(path, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\"" + h +
                                        "\" viewBox=\"0 0 " + w + " " + h +
                                        "\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\">\n" + svg_ + "</svg>\n");
  }
  /// Both: `png_path` and the SVG beside it (".png" replaced by ".svg").
  void save(const std::string& png_path) const {
    save_png(png_path);
    const std::string base = png_path.size() > 4 && png_path.compare(png_path.size() - 4, 4, ".png") == 0
                                 ? png_path.substr(0, png_path.size() - 4)
                                 : png_path;
    save_svg(base + ".svg");
  }

 private:
  static std::string hex(Color c) {
    char b[8];
    std::snprintf(b, sizeof b, "#%02x%02x%02x", c.r, c.g, c.b);
    return b;
  }
  static std::string escape(const std::string& s) {
    std::string out;
    for (char ch : s) {
      if (ch == '&') out += "&amp;";
      else if (ch == '<') out += "&lt;";
      else if (ch == '>') out += "&gt;";
      else if (ch == '"') out += "&quot;";
      else out += ch;
    }
    return out;
  }

  int width_, height_;
  std::vector<std::uint8_t> pixels_;
  std::string svg_;
  bool record_ = true;
};

/// v with `decimals` digits after the point, as chart labels print numbers.
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

// A label fitted into `max_width` pixels at `scale`: words wrapped onto at most `max_lines` lines,
// a line still too wide cut with "...". Every returned line fits.
inline std::vector<std::string> fit_label(const std::string& label, int max_width, int scale = 2, int max_lines = 3) {
  auto fits = [&](const std::string& t) { return Canvas::text_width(t, scale) <= max_width; };
  auto cut = [&](std::string t) {
    if (fits(t)) return t;
    while (!t.empty() && !fits(t + "...")) t.pop_back();
    return t.empty() ? std::string() : t + "...";
  };
  std::vector<std::string> words, lines;
  std::string word;
  for (char ch : label + " ") {
    if (ch == ' ') {
      if (!word.empty()) words.push_back(word);
      word.clear();
    } else {
      word += ch;
    }
  }
  std::string line;
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string candidate = line.empty() ? words[i] : line + " " + words[i];
    if (fits(candidate) || line.empty()) {
      line = candidate;
      continue;
    }
    lines.push_back(line);
    line = words[i];
    if (int(lines.size()) == max_lines - 1) {  // the last line takes the rest
      for (std::size_t j = i + 1; j < words.size(); ++j) line += " " + words[j];
      break;
    }
  }
  if (!line.empty()) lines.push_back(line);
  for (auto& l : lines) l = cut(l);
  return lines;
}

constexpr int label_line_height(int scale) { return 9 * scale; }

// The boxes (x0, y0, x1, y1) that labels centred in `slots` equal slots from x = left take, top at
// `top`: what bar charts draw under their bars; for tests of overlap.
struct Box {
  int x0, y0, x1, y1;
};
inline std::vector<Box> label_boxes(const std::vector<std::string>& labels, int left, double slot, int top, int scale = 2) {
  std::vector<Box> boxes;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto lines = fit_label(labels[i], int(slot) - 8, scale);
    int width = 0;
    for (const auto& l : lines) width = std::max(width, Canvas::text_width(l, scale));
    const int cx = left + int(slot * (double(i) + 0.5));
    boxes.push_back({cx - width / 2, top, cx - width / 2 + width, top + int(lines.size()) * label_line_height(scale)});
  }
  return boxes;
}

// Draws labels[i] fitted and centred in slot i.
inline void draw_labels(Canvas& c, const std::vector<std::string>& labels, int left, double slot, int top, int scale = 2,
                        Color color = palette::black) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int cx = left + int(slot * (double(i) + 0.5));
    const auto lines = fit_label(labels[i], int(slot) - 8, scale);
    for (std::size_t l = 0; l < lines.size(); ++l) c.text_centered(cx, top + int(l) * label_line_height(scale), lines[l], scale, color);
  }
}

// Plot frame: title, y label, horizontal grid with tick labels; returns the plot rectangle.
struct Frame {
  int left, top, right, bottom;
  double y_min, y_max;
  double y(double v) const { return bottom - (v - y_min) / (y_max - y_min) * (bottom - top); }
};

inline Frame draw_frame(Canvas& c, const std::string& title, const std::string& y_label, double y_min, double y_max,
                        int bottom_margin) {
  Frame f{90, 78, c.width() - 30, c.height() - bottom_margin, y_min, y_max};
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

/// One series of bars, optionally with +-error whiskers, values annotated above the bars.
inline void bar_chart(const std::string& path, const std::string& title, const std::vector<std::string>& categories,
                      const std::vector<double>& values, const std::string& y_label, double y_max,
                      const std::vector<double>& errors = {}, int decimals = 1) {
  Canvas c(std::max(900, int(categories.size()) * 90 + 140), 580);
  auto f = detail::draw_frame(c, title, y_label, 0, y_max, 16 + 3 * detail::label_line_height(2) + 12);
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
  }
  detail::draw_labels(c, categories, f.left, slot, f.bottom + 14);
  c.save(path);
}

/// Several series side by side within each category, with a legend; errors[s][i] optional.
inline void grouped_bar_chart(const std::string& path, const std::string& title,
                              const std::vector<std::string>& categories, const std::vector<std::string>& series,
                              const std::vector<std::vector<double>>& values, const std::string& y_label, double y_max,
                              const std::vector<std::vector<double>>& errors = {}) {
  Canvas c(std::max(1100, int(categories.size() * series.size()) * 22 + 200), 660);
  auto f = detail::draw_frame(c, title, y_label, 0, y_max, 150);
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
  }
  detail::draw_labels(c, categories, f.left, slot, f.bottom + 12);
  int x = f.left, row = 0;
  for (std::size_t s = 0; s < series.size(); ++s) {  // legend under the axis labels, wrapped into rows
    const std::string name = detail::fit_label(series[s], c.width() - 2 * f.left, 2, 1)[0];
    const int w = 24 + Canvas::text_width(name, 2) + 30;
    if (x + w > c.width() - 20 && x > f.left) x = f.left, ++row;
    const int y = c.height() - 58 + 24 * row - 24;
    c.rect(x, y, x + 18, y + 18, palette::series(s));
    c.text(x + 24, y + 2, name, 2);
    x += w;
  }
  c.save(path);
}

/// One line of a line chart.
struct LineSeries {
  std::string name;  ///< the legend's name
  std::vector<double> x;  ///< the points' x
  std::vector<double> y;  ///< the points' y
};

/// Writes a line chart (PNG at `path`, SVG beside it) of the series against x, each point marked.
/// The y axis starts at `y_min` (0 unless given: accuracies near the top read better from, say, 80).
inline void line_chart(const std::string& path, const std::string& title, const std::string& x_label,
                       const std::string& y_label, const std::vector<LineSeries>& series, double y_min = 0) {
  double x_min = 1e300, x_max = -1e300, y_max = -1e300;
  for (const auto& s : series) {
    for (double v : s.x) x_min = std::min(x_min, v), x_max = std::max(x_max, v);
    for (double v : s.y) y_max = std::max(y_max, v);
  }
  if (!(x_max > x_min)) x_max = x_min + 1;
  if (!(y_max > y_min)) y_max = y_min + 1;
  Canvas c(1000, 590);
  auto f = detail::draw_frame(c, title, y_label, y_min, y_max + 0.05 * (y_max - y_min), 110);
  auto px = [&](double v) { return f.left + (v - x_min) / (x_max - x_min) * (f.right - f.left); };
  auto py = [&](double v) { return f.y(std::max(v, y_min)); };  // below the axis: drawn on it
  const double step = detail::nice_step(x_max - x_min, 8);
  for (double v = std::ceil(x_min / step) * step; v <= x_max + 1e-9; v += step)
    c.text_centered(int(px(v)), f.bottom + 10, fixed(v, step >= 1 ? 0 : 1), 2, palette::axis);
  c.text_centered((f.left + f.right) / 2, f.bottom + 40, x_label, 2, palette::axis);
  for (std::size_t s = 0; s < series.size(); ++s) {
    for (std::size_t i = 1; i < series[s].x.size(); ++i)
      c.line(px(series[s].x[i - 1]), py(series[s].y[i - 1]), px(series[s].x[i]), py(series[s].y[i]),
             palette::series(s), 3);
    for (std::size_t i = 0; i < series[s].x.size(); ++i) {
      const int x = int(px(series[s].x[i])), y = int(py(series[s].y[i]));
      c.rect(x - 4, y - 4, x + 5, y + 5, palette::series(s));
    }
  }
  // The legend in a row under the x label, where no line can run through it.
  int legend_x = f.left;
  for (std::size_t s = 0; s < series.size(); ++s) {
    const std::string name = detail::fit_label(series[s].name, 250, 2, 1)[0];
    c.rect(legend_x, f.bottom + 70, legend_x + 18, f.bottom + 88, palette::series(s));
    c.text(legend_x + 24, f.bottom + 72, name, 2, palette::series(s));
    legend_x += 24 + Canvas::text_width(name, 2) + 30;
  }
  c.save(path);
}

/// A square matrix as a heat map with each cell's count: rows are true classes, columns predictions.
inline void heatmap(const std::string& path, const std::string& title, const std::vector<std::string>& labels,
                    const std::vector<std::vector<std::int64_t>>& counts, const std::string& row_label,
                    const std::string& column_label) {
  const int n = int(labels.size()), cell = 64, left = 130, top = 90;
  Canvas c(left + n * cell + 40, top + n * cell + 8 + 3 * detail::label_line_height(2) + 40);
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
    c.text_right(left - 8, top + i * cell + cell / 2 - 7, detail::fit_label(labels[std::size_t(i)], left - 16, 2, 1)[0], 2);
  }
  detail::draw_labels(c, labels, left, cell, top + n * cell + 8);
  c.text_centered(left + n * cell / 2, top + n * cell + 8 + 3 * detail::label_line_height(2) + 6, column_label, 2, palette::axis);
  c.text(10, top - 26, row_label, 2, palette::axis);
  c.save(path);
}

}  // namespace viz
}  // namespace headnet
