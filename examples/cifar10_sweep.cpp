// cifar10-sweep: trains variants of the tutorial network for several seeds each and reports
// statistics, so that a gain can be told from seed noise.
//
// Default: conv1 6, 16, 32 and 128 (conv2 16), the tutorial recipe (2 epochs, batch 4, lr 0.001,
// momentum 0.9), seeds 0-4. Variants come from --variants "6 16:32 128" (conv1[:conv2]) or from a
// JSON --config file:
//   {"seeds": 5, "variants": [{"name": "wide", "conv1": 128, "conv2": 16, "epochs": 2, "batch": 4,
//                              "lr": 0.001, "momentum": 0.9}, ...]}
// (every key but conv1 optional; missing ones take the command line's values). The data are read
// once. A run that fails is reported and the sweep goes on. Writes into --out: summary.md and
// summary.json (mean, standard deviation, min and max test accuracy, mean per-class accuracy, wall
// time and images/s for each variant), runs.json (every run), accuracy.png (mean with +-1 sd error
// bars and every run's value) and class_accuracy.png (per-class accuracy, all variants).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

#include <CLI/CLI.hpp>

#include "cifar10_common.hpp"

namespace {

using namespace cifar10;

struct Variant {
  std::string name;
  Recipe recipe;
  std::vector<RunResult> runs;
  std::vector<std::string> failures;
};

// Training FLOPs per image, to weigh the ETA of variants not yet started.
double flops_per_image(const Recipe& r) {
  const double c1 = r.conv1, c2 = r.conv2;
  const double conv1 = 2 * c1 * 28 * 28 * 3 * 25 * 2;       // forward and weight gradient
  const double conv2 = 2 * c2 * 10 * 10 * c1 * 25 * 3;      // forward, weight and input gradients
  const double fc = 2 * (c2 * 25 * 120 + 120 * 84 + 84 * 10) * 3;
  return conv1 + conv2 + fc;
}

double mean(const std::vector<double>& v) { return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }
double stdev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1));  // sample standard deviation
}

std::string fixed(double v, int decimals = 2) { return headnet::viz::fixed(v, decimals); }

std::vector<Variant> variants_from_config(const std::string& path, const Recipe& base, int& seeds) {
  std::ifstream in(path);
  if (!in) throw headnet::DataError("cannot open sweep config '" + path + "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw headnet::DataError("sweep config '" + path + "': malformed JSON: " + e.what());
  }
  if (!j.contains("variants") || !j["variants"].is_array() || j["variants"].empty()) {
    throw headnet::DataError("sweep config '" + path + "': needs a non-empty \"variants\" array");
  }
  if (j.contains("seeds")) seeds = j["seeds"].get<int>();
  std::vector<Variant> out;
  for (std::size_t i = 0; i < j["variants"].size(); ++i) {
    const auto& v = j["variants"][i];
    Variant variant;
    variant.recipe = base;
    try {
      variant.recipe.conv1 = v.at("conv1").get<int>();
      variant.recipe.conv2 = v.value("conv2", base.conv2);
      variant.recipe.epochs = v.value("epochs", base.epochs);
      variant.recipe.batch = v.value("batch", base.batch);
      variant.recipe.lr = v.value("lr", base.lr);
      variant.recipe.momentum = v.value("momentum", base.momentum);
      variant.name = v.value("name", "conv1 " + std::to_string(variant.recipe.conv1) + ", conv2 " +
                                         std::to_string(variant.recipe.conv2));
    } catch (const nlohmann::json::exception& e) {
      throw headnet::DataError("sweep config '" + path + "': variant " + std::to_string(i) + ": " + e.what());
    }
    out.push_back(variant);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  headnet::bound_openmp_spinning(argv);  // a fair share of a busy machine (core/parallel.hpp)
  CLI::App app{"Train variants of the CIFAR-10 tutorial network for several seeds and compare them", "cifar10-sweep"};
  Recipe base;
  std::string data_dir = "data", out_dir = "runs/sweep", config;
  std::vector<std::string> variant_specs{"6", "16", "32", "128"};
  int seeds = 5;
  std::uint64_t first_seed = 0;
  app.add_option("--data", data_dir, "Folder with the CIFAR-10 binary batches")->capture_default_str();
  app.add_option("--variants", variant_specs, "Variants as conv1[:conv2], e.g. 6 16 32 128:32")->capture_default_str();
  app.add_option("--config", config, "JSON file with the variants (overrides --variants)")->check(CLI::ExistingFile);
  app.add_option("--seeds", seeds, "Runs per variant")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--first-seed", first_seed, "Seeds are first-seed, first-seed + 1, ...")->capture_default_str();
  app.add_option("--epochs", base.epochs, "Epochs per run")->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--batch", base.batch, "Mini-batch size")->capture_default_str()->check(CLI::Range(1, 50000));
  app.add_option("--lr", base.lr, "SGD learning rate")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  app.add_option("--momentum", base.momentum, "SGD momentum")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--conv2", base.conv2, "conv2 width for variants that do not give one")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--threads", base.threads, "Threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_option("--out", out_dir, "Folder for the tables and charts")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    if (base.threads > 0) headnet::set_num_threads(base.threads);
    base.threads = headnet::num_threads();
    std::vector<Variant> variants;
    if (!config.empty()) {
      variants = variants_from_config(config, base, seeds);
    } else {
      for (const auto& spec : variant_specs) {
        Variant v;
        v.recipe = base;
        try {
          const auto colon = spec.find(':');
          std::size_t used = 0;
          v.recipe.conv1 = std::stoi(spec.substr(0, colon), &used);
          if (used != (colon == std::string::npos ? spec.size() : colon)) throw std::invalid_argument(spec);
          if (colon != std::string::npos) v.recipe.conv2 = std::stoi(spec.substr(colon + 1));
        } catch (const std::exception&) {
          throw headnet::Error("--variants: '" + spec + "' is not conv1[:conv2], e.g. 128 or 128:32");
        }
        v.name = "conv1 " + std::to_string(v.recipe.conv1) + ", conv2 " + std::to_string(v.recipe.conv2);
        variants.push_back(v);
      }
    }
    for (const auto& v : variants) {
      if (v.recipe.conv1 < 1 || v.recipe.conv2 < 1 || v.recipe.batch < 1 || v.recipe.epochs < 1) {
        throw headnet::Error("variant '" + v.name + "': widths, batch and epochs must be at least 1");
      }
    }
    std::filesystem::create_directories(out_dir);
    const std::string folder = find_data_folder(data_dir);
    const ImageSet train = headnet::data::read_cifar10_train(folder);
    const ImageSet test = headnet::data::read_cifar10_test(folder);

    const int total_runs = int(variants.size()) * seeds;
    double total_work = 0, work_done = 0;
    for (const auto& v : variants) total_work += flops_per_image(v.recipe) * v.recipe.epochs * seeds;
    const auto start = std::chrono::steady_clock::now();
    int done = 0;
    for (auto& v : variants) {
      for (int s = 0; s < seeds; ++s) {
        Recipe r = v.recipe;
        r.seed = first_seed + std::uint64_t(s);
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double eta = work_done > 0 ? elapsed * (total_work - work_done) / work_done : 0;
        std::printf("run %d/%d: %s, seed %llu (elapsed %.0f s%s)\n", done + 1, total_runs, v.name.c_str(),
                    (unsigned long long)r.seed, elapsed,
                    work_done > 0 ? (", sweep ETA " + fixed(eta, 0) + " s").c_str() : "");
        std::fflush(stdout);
        try {
          headnet::manual_seed(r.seed);
          auto net = headnet::models::tutorial_net<float>(r.conv1, r.conv2);
          RunOptions run;
          run.progress_prefix = "[" + std::to_string(done + 1) + "/" + std::to_string(total_runs) + "] ";
          RunResult result = train_and_evaluate(r, train, test, net, run);
          std::printf("  test accuracy %.2f%%, %.1f s, %.0f images/s\n", result.test.accuracy, result.train_seconds,
                      result.images_per_second);
          v.runs.push_back(result);
        } catch (const std::exception& e) {
          std::printf("  FAILED: %s\n", e.what());
          v.failures.push_back("seed " + std::to_string(r.seed) + ": " + e.what());
        }
        std::fflush(stdout);
        work_done += flops_per_image(v.recipe) * v.recipe.epochs;
        ++done;
      }
    }

    // Tables.
    nlohmann::json summary = nlohmann::json::array(), runs = nlohmann::json::array();
    std::ostringstream md;
    md << "| variant | runs | mean | sd | min | max | train time (s) | images/s |\n|---|---|---|---|---|---|---|---|\n";
    std::vector<std::string> names;
    std::vector<double> means, sds;
    std::vector<std::vector<double>> class_means, class_sds;
    for (const auto& v : variants) {
      std::vector<double> acc, seconds, rate;
      std::vector<std::vector<double>> per_class(10);
      for (const auto& r : v.runs) {
        acc.push_back(r.test.accuracy);
        seconds.push_back(r.train_seconds);
        rate.push_back(r.images_per_second);
        for (int c = 0; c < 10; ++c) per_class[std::size_t(c)].push_back(r.test.class_accuracy[std::size_t(c)]);
        nlohmann::json j = run_json(r);
        j["variant"] = v.name;
        runs.push_back(j);
      }
      nlohmann::json class_json = nlohmann::json::object();
      std::vector<double> cm, cs;
      for (int c = 0; c < 10; ++c) {
        cm.push_back(mean(per_class[std::size_t(c)]));
        cs.push_back(stdev(per_class[std::size_t(c)]));
        class_json[class_names()[std::size_t(c)]] = {{"mean", cm.back()}, {"sd", cs.back()}};
      }
      const double lo = acc.empty() ? 0 : *std::min_element(acc.begin(), acc.end());
      const double hi = acc.empty() ? 0 : *std::max_element(acc.begin(), acc.end());
      summary.push_back({{"variant", v.name},
                         {"config", v.recipe.to_json()},
                         {"runs", acc.size()},
                         {"failures", v.failures},
                         {"test_accuracy", {{"mean", mean(acc)}, {"sd", stdev(acc)}, {"min", lo}, {"max", hi}, {"values", acc}}},
                         {"class_accuracy", class_json},
                         {"train_seconds_mean", mean(seconds)},
                         {"images_per_second_mean", mean(rate)}});
      md << "| " << v.name << " | " << acc.size() << (v.failures.empty() ? "" : " (" + std::to_string(v.failures.size()) + " failed)")
         << " | " << fixed(mean(acc)) << "% | " << fixed(stdev(acc)) << " | " << fixed(lo) << "% | " << fixed(hi) << "% | "
         << fixed(mean(seconds), 1) << " | " << fixed(mean(rate), 0) << " |\n";
      names.push_back(v.name);
      means.push_back(mean(acc));
      sds.push_back(stdev(acc));
      class_means.push_back(cm);
      class_sds.push_back(cs);
    }
    md << "\nMean per-class test accuracy (%):\n\n| variant |";
    for (const auto& c : class_names()) md << " " << c << " |";
    md << "\n|---|";
    for (int c = 0; c < 10; ++c) md << "---|";
    md << "\n";
    for (std::size_t i = 0; i < variants.size(); ++i) {
      md << "| " << names[i] << " |";
      for (int c = 0; c < 10; ++c) md << " " << fixed(class_means[i][std::size_t(c)], 1) << " |";
      md << "\n";
    }
    const std::string table = md.str();
    write_text_atomically(out_dir + "/summary.md", table);
    write_text_atomically(out_dir + "/summary.json", summary.dump(2) + "\n");
    write_text_atomically(out_dir + "/runs.json", runs.dump(2) + "\n");

    // Charts.
    double top = 0;
    for (std::size_t i = 0; i < means.size(); ++i) top = std::max(top, means[i] + sds[i]);
    headnet::viz::bar_chart(out_dir + "/accuracy.png",
                            "Test accuracy, mean +- 1 sd over " + std::to_string(seeds) + " seeds", names, means,
                            "accuracy (%)", std::max(10.0, std::ceil((top + 5) / 10) * 10), sds, 2);
    headnet::viz::grouped_bar_chart(out_dir + "/class_accuracy.png",
                                    "Per-class test accuracy (mean over seeds, +- 1 sd)", class_names(), names,
                                    class_means, "accuracy (%)", 100, class_sds);
    std::printf("\n%s\nWrote %s/summary.md, summary.json, runs.json, accuracy.png, class_accuracy.png\n",
                table.c_str(), out_dir.c_str());
    bool any_failed = false;
    for (const auto& v : variants) any_failed = any_failed || !v.failures.empty();
    return any_failed ? 3 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cifar10-sweep: error: %s\n", e.what());
    return 1;
  }
}
