// cifar10-fast-chart: test accuracy against wall minutes for finished runs of the fast recipe, from
// headnet's cifar10-fast and from scripts/pytorch_fast.py (both write the same results.json).
//
//   cifar10-fast-chart runs/fast_e2 runs/fast_e4 runs/full runs/pytorch_e4 runs/pytorch_full \
//       --out docs/images/fast_time_accuracy.png
//
// Each argument is a run folder or a .json file (a run's results.json). The runs become one line per program
// (headnet, PyTorch), ordered by time; a point is one run, x its wall minutes (training, which
// includes the per-epoch test pass, plus the final evaluation), y its test accuracy with TTA (or
// without, --no-tta). Writes the PNG (and an SVG beside it) and prints the runs as a Markdown table.
// Exit codes: 0 done, 1 a run folder or file that cannot be read.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <headnet/core/error.hpp>
#include <headnet/viz/chart.hpp>

namespace {

struct Run {
  std::string path, program;
  double epochs = 0, accuracy = 0, accuracy_without_tta = 0, train_seconds = 0, eval_seconds = 0, images_per_second = 0;
  double minutes() const { return (train_seconds + eval_seconds) / 60; }
};

// One run from its results.json; every error names the file.
Run read_run(const std::string& given) {
  namespace fs = std::filesystem;
  const std::string path = fs::path(given).extension() == ".json" ? given : (fs::path(given) / "results.json").string();
  std::ifstream in(path);
  if (!in) throw headnet::Error(path + ": cannot open (expected a run folder of cifar10-fast or scripts/pytorch_fast.py)");
  try {
    const auto j = nlohmann::json::parse(in);
    Run r;
    r.path = given;
    r.program = j.contains("torch_version") ? "PyTorch " + j.at("torch_version").get<std::string>() : "headnet";
    r.epochs = j.at("recipe").at("epochs").get<double>();
    r.accuracy = j.at("test_accuracy").get<double>();
    r.accuracy_without_tta = j.at("test_accuracy_without_tta").get<double>();
    r.train_seconds = j.at("train_seconds").get<double>();
    r.eval_seconds = j.at("eval_seconds").get<double>();
    r.images_per_second = j.at("images_per_second").get<double>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw headnet::Error(path + ": not a results.json of the fast recipe (" + e.what() + ")");
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cifar10-fast-chart: test accuracy against wall minutes for runs of the fast recipe"};
  std::vector<std::string> inputs;
  std::string out = "fast_time_accuracy.png", title = "CIFAR-10 fast recipe: test accuracy against wall time";
  bool no_tta = false;
  app.add_option("runs", inputs, "run folders (or their results.json) of cifar10-fast and scripts/pytorch_fast.py")->required();
  app.add_option("--out", out, "the chart (PNG; an SVG is written beside it)")->capture_default_str();
  app.add_option("--title", title, "the chart's title")->capture_default_str();
  app.add_flag("--no-tta", no_tta, "plot the accuracy without test-time augmentation");
  CLI11_PARSE(app, argc, argv);

  try {
    std::map<std::string, std::vector<Run>> by_program;
    for (const auto& input : inputs) {
      Run r = read_run(input);
      by_program[r.program].push_back(r);
    }
    std::printf("| program | run | epochs | test accuracy, no TTA / TTA | training (s) | evaluation (s) | wall (min) | images/s |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    std::vector<headnet::viz::LineSeries> series;
    double lowest = 100;
    for (auto& [program, runs] : by_program) {
      std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.minutes() < b.minutes(); });
      headnet::viz::LineSeries s{program, {}, {}};
      for (const auto& r : runs) {
        std::printf("| %s | `%s` | %g | %.2f%% / %.2f%% | %.0f | %.0f | %.1f | %.0f |\n", program.c_str(), r.path.c_str(),
                    r.epochs, r.accuracy_without_tta, r.accuracy, r.train_seconds, r.eval_seconds, r.minutes(),
                    r.images_per_second);
        s.x.push_back(r.minutes());
        s.y.push_back(no_tta ? r.accuracy_without_tta : r.accuracy);
        lowest = std::min(lowest, s.y.back());
      }
      series.push_back(std::move(s));
    }
    // The y axis from a multiple of 5 a little under the lowest point: the differences that matter
    // are a point or two near the top.
    const double y_min = std::max(0.0, 5 * std::floor((lowest - 1) / 5));
    headnet::viz::line_chart(out, title, "wall minutes (training + evaluation)",
                             no_tta ? "test accuracy, no TTA (%)" : "test accuracy with TTA (%)", series, y_min);
    std::printf("Wrote %s\n", out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cifar10-fast-chart: error: %s\n", e.what());
    return 1;
  }
}
