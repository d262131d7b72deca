// Charts: no two pieces of text overlap, with long labels, in every chart kind; each chart is
// written as PNG and SVG; label fitting wraps and cuts as it says.
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <headnet/viz/chart.hpp>

using namespace headnet;

namespace {

struct TextBox {
  double x0, y0, x1, y1;
  std::string text;
};

// Every <text> of an SVG written by Canvas, as the box it covers (font height 9 x scale, 7 x scale
// above the baseline).
std::vector<TextBox> text_boxes(const std::string& svg_path) {
  std::ifstream in(svg_path);
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::regex text_re("<text x=\"(-?\\d+)\" y=\"(-?\\d+)\" font-size=\"(\\d+)\" textLength=\"(\\d+)\"[^>]*>([^<]*)</text>");
  std::vector<TextBox> boxes;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), text_re); it != std::sregex_iterator(); ++it) {
    const double x = std::stod((*it)[1]), y = std::stod((*it)[2]), size = std::stod((*it)[3]), length = std::stod((*it)[4]);
    const double scale = size / 9;
    boxes.push_back({x, y - 7 * scale, x + length, y + 2 * scale, (*it)[5]});
  }
  return boxes;
}

void check_no_overlap(const std::string& svg_path) {
  const auto boxes = text_boxes(svg_path);
  REQUIRE(boxes.size() > 10);
  for (std::size_t i = 0; i < boxes.size(); ++i)
    for (std::size_t j = i + 1; j < boxes.size(); ++j) {
      const auto& a = boxes[i];
      const auto& b = boxes[j];
      const bool overlap = a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
      INFO(svg_path << ": '" << a.text << "' and '" << b.text << "'");
      CHECK_FALSE(overlap);
    }
}

std::vector<std::string> long_labels() {
  std::vector<std::string> labels;
  for (int i = 0; i < 10; ++i)
    labels.push_back("conv1 " + std::to_string(6 << i) + " channels, conv2 16 channels, seed " + std::to_string(i) +
                     " averaged_over_many_runs_with_a_very_long_name");
  return labels;
}

}  // namespace

TEST_CASE("Charts: ten long labels never overlap, in PNG and SVG", "[charts]") {
  const auto labels = long_labels();
  std::vector<double> values{53.4, 55.1, 57.9, 60.2, 61.0, 62.7, 62.1, 61.5, 60.0, 58.3}, errors(10, 0.8);
  viz::bar_chart("chart_test_bar.png", "Test accuracy per variant", labels, values, "accuracy (%)", 100, errors);
  check_no_overlap("chart_test_bar.svg");
  std::vector<std::vector<double>> grouped{values, values};
  viz::grouped_bar_chart("chart_test_grouped.png", "Per class", labels, {"a series with a long name", "another long series name"},
                         grouped, "accuracy (%)", 100);
  check_no_overlap("chart_test_grouped.svg");
  std::vector<std::vector<std::int64_t>> counts(10, std::vector<std::int64_t>(10, 7));
  viz::heatmap("chart_test_heatmap.png", "Confusion", labels, counts, "true class", "predicted class");
  check_no_overlap("chart_test_heatmap.svg");
  for (const char* f : {"chart_test_bar", "chart_test_grouped", "chart_test_heatmap"}) {
    std::ifstream png(std::string(f) + ".png", std::ios::binary);
    char magic[4] = {};
    png.read(magic, 4);
    CHECK(std::string(magic + 1, 3) == "PNG");
    std::remove((std::string(f) + ".png").c_str());
    std::remove((std::string(f) + ".svg").c_str());
  }
}

TEST_CASE("Charts: labels wrap at spaces, long words are cut, every line fits", "[charts]") {
  const auto lines = viz::detail::fit_label("conv1 16, conv2 16", 120, 2);
  CHECK(lines.size() == 2);
  for (const auto& l : lines) CHECK(viz::Canvas::text_width(l, 2) <= 120);
  const auto cut = viz::detail::fit_label("supercalifragilisticexpialidocious", 60, 2);
  REQUIRE(cut.size() == 1);
  CHECK(cut[0].size() > 3);
  CHECK(cut[0].substr(cut[0].size() - 3) == "...");
  CHECK(viz::detail::fit_label("cat", 200, 2) == std::vector<std::string>{"cat"});
  const auto many = viz::detail::fit_label("one two three four five six seven eight nine ten", 50, 2);
  CHECK(many.size() == 3);  // at most three lines, the last cut
  for (const auto& l : many) CHECK(viz::Canvas::text_width(l, 2) <= 50);
  // Label boxes of neighbouring slots never overlap, whatever the text.
  const auto boxes = viz::detail::label_boxes(long_labels(), 90, 77.5, 400);
  for (std::size_t i = 1; i < boxes.size(); ++i) CHECK(boxes[i - 1].x1 <= boxes[i].x0);
}

TEST_CASE("Charts: SVG text is escaped", "[charts]") {
  viz::Canvas c(200, 50);
  c.text(5, 5, "a < b & \"c\"");
  c.save("chart_test_escape.png");
  std::ifstream in("chart_test_escape.svg");
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(svg.find("a &lt; b &amp; &quot;c&quot;") != std::string::npos);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"200\" height=\"50\"", 0) == 0);
  std::remove("chart_test_escape.png");
  std::remove("chart_test_escape.svg");
}

TEST_CASE("Charts: a line chart marks every point, from its y_min up, and keeps lower points on the axis", "[charts]") {
  // Two series; the y axis starts at 80, so 70 is drawn on the axis, not below the frame.
  viz::line_chart("chart_test_line.png", "Accuracy against minutes", "wall minutes", "accuracy (%)",
                  {{"headnet", {5, 12, 27}, {85, 91, 94}}, {"PyTorch", {20, 60}, {70, 93.5}}}, 80);
  std::ifstream in("chart_test_line.svg");
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The markers are the 9 x 9 squares; the axis line is the 2-pixel-high rectangle at the bottom.
  const std::regex marker_re("<rect x=\"(\\d+)\" y=\"(\\d+)\" width=\"9\" height=\"9\"");
  std::vector<std::pair<int, int>> markers;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), marker_re); it != std::sregex_iterator(); ++it)
    markers.emplace_back(std::stoi((*it)[1]), std::stoi((*it)[2]) + 4);
  REQUIRE(markers.size() == 5);
  const int axis_y = markers[3].second;  // PyTorch's 70: clamped onto the axis at y_min
  std::smatch axis;
  REQUIRE(std::regex_search(svg, axis, std::regex("<rect x=\"90\" y=\"(\\d+)\" width=\"\\d+\" height=\"2\"")));
  CHECK(axis_y == std::stoi(axis[1]));
  // Higher accuracy is higher up, later is further right.
  CHECK(markers[0].second > markers[1].second);
  CHECK(markers[1].second > markers[2].second);
  CHECK(markers[0].first < markers[1].first);
  CHECK(markers[4].second < markers[0].second);
  check_no_overlap("chart_test_line.svg");
  std::remove("chart_test_line.png");
  std::remove("chart_test_line.svg");
}
