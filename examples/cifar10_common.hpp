// examples/cifar10_common.hpp: the tutorial's training recipe, shared by cifar10-train and
// cifar10-sweep: finding the data, one training run, evaluation, and writing results and charts.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <headnet/data/cifar10.hpp>
#include <headnet/headnet.hpp>
#include <headnet/io/safetensors.hpp>
#include <headnet/models/tutorial_net.hpp>
#include <headnet/viz/chart.hpp>

namespace cifar10 {

using headnet::data::Cifar10;
using headnet::data::ImageSet;

struct Recipe {
  int epochs = 2;
  int batch = 4;
  double lr = 0.001;
  double momentum = 0.9;
  int conv1 = 6;
  int conv2 = 16;
  std::uint64_t seed = 0;
  int threads = 0;            // 0: all cores
  int print_every = 2000;     // mini-batches between the tutorial's loss lines
  int eval_batch = 1000;

  nlohmann::json to_json() const {
    return {{"epochs", epochs}, {"batch", batch}, {"lr", lr},     {"momentum", momentum},
            {"conv1", conv1},   {"conv2", conv2}, {"seed", seed}, {"threads", threads}};
  }
};

struct Evaluation {
  double accuracy = 0;                                 // percent
  std::vector<double> class_accuracy;                  // percent, per class
  std::vector<std::vector<std::int64_t>> confusion;    // [true][predicted]
};

struct RunResult {
  Recipe recipe;
  std::vector<std::pair<double, double>> loss_curve;  // (epoch as a fraction, mean loss since the last point)
  Evaluation test;
  double train_seconds = 0;
  double images_per_second = 0;
};

// A folder with the six .bin files, or one holding cifar-10-batches-bin/. Throws with advice.
inline std::string find_data_folder(const std::string& given) {
  namespace fs = std::filesystem;
  for (const std::string& candidate : {given, given + "/cifar-10-batches-bin"}) {
    if (fs::exists(candidate + "/data_batch_1.bin")) return candidate;
  }
  throw headnet::DataError("no CIFAR-10 data in '" + given +
                           "': expected data_batch_1.bin ... data_batch_5.bin and test_batch.bin there or in its "
                           "cifar-10-batches-bin/ folder. Run scripts/get_cifar10.sh to download (or unpack) them.");
}

inline Evaluation evaluate(headnet::Sequential<float>& net, const ImageSet& set, int batch) {
  net.eval();
  Evaluation e;
  e.confusion.assign(10, std::vector<std::int64_t>(10, 0));
  headnet::data::BatchLoader loader(set, batch, false, 0);
  headnet::Tensor<float> images;
  std::vector<std::int32_t> labels;
  std::int64_t correct = 0;
  while (loader.next(images, labels)) {
    const headnet::Tensor<float> logits = net.forward(images);
    for (std::int64_t i = 0; i < logits.size(0); ++i) {
      const float* row = logits.data() + i * 10;
      const int predicted = int(std::max_element(row, row + 10) - row);
      ++e.confusion[std::size_t(labels[std::size_t(i)])][std::size_t(predicted)];
      correct += predicted == labels[std::size_t(i)];
    }
  }
  e.accuracy = set.size() ? 100.0 * double(correct) / double(set.size()) : 0;
  for (int c = 0; c < 10; ++c) {
    std::int64_t total = 0;
    for (auto v : e.confusion[std::size_t(c)]) total += v;
    e.class_accuracy.push_back(total ? 100.0 * double(e.confusion[std::size_t(c)][std::size_t(c)]) / double(total) : 0);
  }
  net.train();
  return e;
}

// Live progress on a terminal: one line rewritten in place, at most four times a second.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && ::isatty(STDERR_FILENO)) {}
  void update(const std::string& prefix, int epoch, int epochs, std::int64_t step, std::int64_t steps, double loss,
              double images_per_second, double eta_seconds) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(250) && step != steps) return;
    last_ = now;
    const int eta = int(eta_seconds + 0.5);
    std::fprintf(stderr, "\r%sepoch %d/%d  step %lld/%lld  loss %.3f  %.0f img/s  ETA %d:%02d   ", prefix.c_str(), epoch,
                 epochs, (long long)step, (long long)steps, loss, images_per_second, eta / 60, eta % 60);
    std::fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (enabled_ && shown_) std::fprintf(stderr, "\r%100s\r", "");
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// Trains the tutorial network with `recipe` and evaluates it on `test`. `log` receives the
// tutorial's loss lines ("[1,  2000] loss: 2.051"); pass an empty function for silence.
inline RunResult train_and_evaluate(const Recipe& recipe, const ImageSet& train, const ImageSet& test,
                                    headnet::Sequential<float>& net, const std::function<void(const std::string&)>& log,
                                    Progress& progress, const std::string& progress_prefix = "") {
  RunResult result;
  result.recipe = recipe;
  headnet::SGD<float> sgd(net.parameters(), headnet::SGDOptions(recipe.lr).momentum(recipe.momentum));
  headnet::CrossEntropyLoss<float> criterion;
  headnet::data::BatchLoader loader(train, recipe.batch, true, recipe.seed);
  headnet::Tensor<float> images;
  std::vector<std::int32_t> labels;
  const std::int64_t steps_per_epoch = loader.batches_per_epoch();
  const std::int64_t curve_every = std::max<std::int64_t>(1, steps_per_epoch / 50);  // 50 points an epoch
  const auto start = std::chrono::steady_clock::now();
  std::int64_t images_seen = 0;
  net.train();
  for (int epoch = 0; epoch < recipe.epochs; ++epoch) {
    if (epoch > 0) loader.start_epoch();
    double running_loss = 0, curve_loss = 0;  // since the last loss line; since the last curve point
    int curve_count = 0;
    for (std::int64_t step = 0; loader.next(images, labels); ++step) {
      sgd.zero_grad();
      const float loss = criterion.forward(net.forward(images), labels);
      if (!std::isfinite(loss)) {
        throw headnet::NumericError("training diverged: the loss is " + std::to_string(loss) + " at epoch " +
                                    std::to_string(epoch + 1) + ", step " + std::to_string(step + 1) +
                                    " (try a smaller --lr)");
      }
      net.backward(criterion.backward());
      sgd.step();
      images_seen += std::int64_t(labels.size());
      running_loss += loss;
      curve_loss += loss;
      ++curve_count;
      if ((step + 1) % recipe.print_every == 0) {
        char line[64];
        std::snprintf(line, sizeof line, "[%d, %5lld] loss: %.3f", epoch + 1, (long long)(step + 1),
                      running_loss / recipe.print_every);
        progress.clear();
        if (log) log(line);
        running_loss = 0;
      }
      if ((step + 1) % curve_every == 0 || step + 1 == steps_per_epoch) {
        result.loss_curve.push_back({epoch + double(step + 1) / double(steps_per_epoch), curve_loss / curve_count});
        curve_loss = 0;
        curve_count = 0;
      }
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = elapsed > 0 ? double(images_seen) / elapsed : 0;
      const double remaining = double(recipe.epochs) * double(train.size()) - double(images_seen);
      progress.update(progress_prefix, epoch + 1, recipe.epochs, step + 1, steps_per_epoch,
                      curve_count ? curve_loss / curve_count : loss, rate, rate > 0 ? remaining / rate : 0);
    }
  }
  progress.clear();
  result.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.images_per_second = result.train_seconds > 0 ? double(images_seen) / result.train_seconds : 0;
  result.test = evaluate(net, test, recipe.eval_batch);
  return result;
}

inline std::vector<std::string> class_names() {
  return std::vector<std::string>(Cifar10::class_names().begin(), Cifar10::class_names().end());
}

inline nlohmann::json evaluation_json(const Evaluation& e) {
  nlohmann::json per_class = nlohmann::json::object();
  for (int c = 0; c < 10; ++c) per_class[class_names()[std::size_t(c)]] = e.class_accuracy[std::size_t(c)];
  return {{"test_accuracy", e.accuracy}, {"class_accuracy", per_class}, {"confusion_matrix", e.confusion}};
}

inline nlohmann::json run_json(const RunResult& r) {
  nlohmann::json j = evaluation_json(r.test);
  j["config"] = r.recipe.to_json();
  j["loss_curve"] = nlohmann::json::array();
  for (const auto& point : r.loss_curve) j["loss_curve"].push_back({{"epoch", point.first}, {"loss", point.second}});
  j["train_seconds"] = r.train_seconds;
  j["images_per_second"] = r.images_per_second;
  j["headnet_version"] = HEADNET_VERSION_STRING;
  return j;
}

// The three charts of one run: per-class accuracy, training loss, confusion matrix.
inline void draw_run_charts(const std::string& folder, const RunResult& r, const std::string& name) {
  using namespace headnet::viz;
  bar_chart(folder + "/class_accuracy.png",
            "Per-class test accuracy, " + name + " (overall " + detail::format(r.test.accuracy, 2) + "%)", class_names(),
            r.test.class_accuracy, "accuracy (%)", 100);
  LineSeries loss{"training loss", {}, {}};
  for (const auto& p : r.loss_curve) loss.x.push_back(p.first), loss.y.push_back(p.second);
  line_chart(folder + "/loss.png", "Training loss, " + name, "epoch", "cross-entropy loss", {loss});
  heatmap(folder + "/confusion.png", "Confusion matrix, " + name, class_names(), r.test.confusion, "true class",
          "predicted class");
}

inline void write_text_atomically(const std::string& path, const std::string& text) {
  headnet::io::detail::write_file_atomically(path, text);
}

}  // namespace cifar10
