// examples/cifar10_common.hpp: the tutorial's training recipe, shared by cifar10-train and
// cifar10-sweep: finding the data, one training run, evaluation, and writing results and charts.
#pragma once

#include <chrono>
#include <csignal>
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

// Where a training run is: what a checkpoint holds besides the weights and the optimiser.
struct TrainState {
  int epoch = 0;                              // the epoch in progress
  std::int64_t step = 0;                      // steps of it already done
  headnet::Generator::State epoch_generator{};  // the loader's generator before this epoch's shuffle
  double running_loss = 0, curve_loss = 0;    // since the last loss line; since the last curve point
  std::int64_t curve_count = 0;
  std::int64_t images_seen = 0;
  double seconds = 0;                         // training time before this process
  std::vector<std::pair<double, double>> loss_curve;
};

struct CheckpointOptions {
  std::string path;               // empty: no checkpoints
  std::int64_t every = 2000;      // steps between checkpoints (0: only at the end of each epoch)
  std::int64_t kill_at_step = 0;  // testing only: SIGKILL ourselves after this many steps
};

namespace detail {
inline std::string exact(double v) {  // hexadecimal floating point: parses back to the same bits
  char b[64];
  std::snprintf(b, sizeof b, "%a", v);
  return b;
}
inline std::vector<headnet::Parameter<float>> checkpoint_tensors(headnet::Sequential<float>& net,
                                                                 headnet::SGD<float>& sgd) {
  auto tensors = net.parameters();
  const auto& params = sgd.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (sgd.velocity()[i].numel() > 0)
      tensors.push_back({"optimizer.momentum." + params[i].name, sgd.velocity()[i], sgd.velocity()[i]});
  }
  return tensors;
}
}  // namespace detail

// Writes weights, momentum buffers, generator state, position and recipe, atomically.
inline void save_checkpoint(const std::string& path, const Recipe& recipe, headnet::Sequential<float>& net,
                            headnet::SGD<float>& sgd, const TrainState& s) {
  nlohmann::json state = {{"epoch", s.epoch},
                          {"step", s.step},
                          {"running_loss", detail::exact(s.running_loss)},
                          {"curve_loss", detail::exact(s.curve_loss)},
                          {"curve_count", s.curve_count},
                          {"images_seen", s.images_seen},
                          {"seconds", detail::exact(s.seconds)},
                          {"sgd_steps", sgd.steps()}};
  for (auto word : s.epoch_generator) state["epoch_generator"].push_back(std::to_string(word));
  for (const auto& p : s.loss_curve) state["loss_curve"].push_back({detail::exact(p.first), detail::exact(p.second)});
  headnet::io::save_safetensors(path, detail::checkpoint_tensors(net, sgd),
                                {{"headnet_checkpoint", "1"}, {"recipe", recipe.to_json().dump()}, {"state", state.dump()}});
}

// The recipe stored in a checkpoint (to build the network before loading it).
inline Recipe checkpoint_recipe(const std::string& path) {
  const auto file = headnet::io::read_safetensors(path);
  if (!file.metadata.count("headnet_checkpoint") || !file.metadata.count("recipe") || !file.metadata.count("state")) {
    throw headnet::DataError("'" + path + "' is not a headnet checkpoint (its metadata lacks recipe and state)");
  }
  try {
    const auto j = nlohmann::json::parse(file.metadata.at("recipe"));
    Recipe r;
    r.epochs = j.at("epochs");
    r.batch = j.at("batch");
    r.lr = j.at("lr");
    r.momentum = j.at("momentum");
    r.conv1 = j.at("conv1");
    r.conv2 = j.at("conv2");
    r.seed = j.at("seed");
    r.threads = j.at("threads");
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw headnet::DataError("checkpoint '" + path + "': malformed recipe: " + e.what());
  }
}

// Loads weights and momentum buffers (validated whole before anything changes) and the state.
inline TrainState load_checkpoint(const std::string& path, headnet::Sequential<float>& net, headnet::SGD<float>& sgd) {
  const auto file = headnet::io::read_safetensors(path);
  TrainState s;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(file.metadata.at("state"));
    s.epoch = j.at("epoch");
    s.step = j.at("step");
    s.running_loss = std::strtod(j.at("running_loss").get<std::string>().c_str(), nullptr);
    s.curve_loss = std::strtod(j.at("curve_loss").get<std::string>().c_str(), nullptr);
    s.curve_count = j.at("curve_count");
    s.images_seen = j.at("images_seen");
    s.seconds = std::strtod(j.at("seconds").get<std::string>().c_str(), nullptr);
    for (std::size_t i = 0; i < 4; ++i) s.epoch_generator[i] = std::stoull(j.at("epoch_generator").at(i).get<std::string>());
    if (j.contains("loss_curve")) {
      for (const auto& p : j["loss_curve"])
        s.loss_curve.push_back({std::strtod(p.at(0).get<std::string>().c_str(), nullptr),
                                std::strtod(p.at(1).get<std::string>().c_str(), nullptr)});
    }
  } catch (const std::exception& e) {
    throw headnet::DataError("checkpoint '" + path + "': malformed state: " + e.what());
  }
  headnet::io::load_safetensors(path, detail::checkpoint_tensors(net, sgd));
  sgd.set_steps(j.at("sgd_steps").get<std::int64_t>());
  return s;
}

// Names what went non-finite: a parameter, the input, or the first layer whose output is.
inline std::string diagnose_nonfinite(headnet::Sequential<float>& net, const headnet::Tensor<float>& images) {
  for (auto& p : net.parameters())
    if (!headnet::all_finite(p.value)) return "parameter " + p.name + " holds a NaN or infinity";
  if (!headnet::all_finite(images)) return "the input batch holds a NaN or infinity";
  headnet::Tensor<float> h = images;
  for (std::size_t i = 0; i < net.size(); ++i) {
    h = net[i].forward(h);
    if (!headnet::all_finite(h))
      return "layer " + std::to_string(i) + " '" + net.name(i) + "' (" + net[i].type() + ") is the first to output a NaN or infinity";
  }
  return "the logits are finite but the loss is not";
}

// Trains `net` with `recipe`, continuing from `state` (a fresh TrainState for a new run). Prints
// the tutorial's loss lines through `log` (may be empty), checkpoints as `checkpoints` says, and
// stops with NumericError, before any update, when the loss or a gradient is not finite.
inline void train(const Recipe& recipe, const ImageSet& train_set, headnet::Sequential<float>& net,
                  headnet::SGD<float>& sgd, TrainState& state, const std::function<void(const std::string&)>& log,
                  Progress& progress, const std::string& progress_prefix = "",
                  const CheckpointOptions& checkpoints = CheckpointOptions()) {
  headnet::CrossEntropyLoss<float> criterion;
  headnet::data::BatchLoader loader(train_set, recipe.batch, true, recipe.seed);
  if (state.epoch == 0 && state.step == 0) {
    state.epoch_generator = headnet::data::BatchLoader::initial_generator(recipe.seed).state();  // the constructor's shuffle
  } else {
    loader.generator().set_state(state.epoch_generator);
    loader.start_epoch();
    loader.skip(state.step);
  }
  headnet::Tensor<float> images;
  std::vector<std::int32_t> labels;
  const std::int64_t steps_per_epoch = loader.batches_per_epoch();
  const std::int64_t curve_every = std::max<std::int64_t>(1, steps_per_epoch / 50);  // 50 points an epoch
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t images_before = state.images_seen;
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto stop = [&](const std::string& what) {
    progress.clear();
    throw headnet::NumericError("training diverged at epoch " + std::to_string(state.epoch + 1) + ", step " +
                                std::to_string(state.step + 1) + ": " + what +
                                (checkpoints.path.empty()
                                     ? std::string()
                                     : std::filesystem::exists(checkpoints.path)
                                           ? "; the last good checkpoint is " + checkpoints.path
                                           : "; no checkpoint had been written yet") +
                                " (try a smaller --lr)");
  };
  net.train();
  bool positioned = true;
  for (; state.epoch < recipe.epochs; ++state.epoch) {
    if (!positioned) {
      state.epoch_generator = loader.generator().state();
      loader.start_epoch();
      state.step = 0;
      state.running_loss = 0;  // the loss lines cover one epoch's steps, as in the tutorial
    }
    positioned = false;
    while (loader.next(images, labels)) {
      sgd.zero_grad();
      const float loss = criterion.forward(net.forward(images), labels);
      if (!std::isfinite(loss)) stop("the loss is " + std::to_string(loss) + "; " + diagnose_nonfinite(net, images));
      net.backward(criterion.backward());
      for (const auto& p : sgd.parameters())
        if (!headnet::all_finite(p.grad)) stop("the gradient of " + p.name + " holds a NaN or infinity");
      sgd.step();
      ++state.step;
      state.images_seen += std::int64_t(labels.size());
      state.running_loss += loss;
      state.curve_loss += loss;
      ++state.curve_count;
      if (state.step % recipe.print_every == 0) {
        char line[64];
        std::snprintf(line, sizeof line, "[%d, %5lld] loss: %.3f", state.epoch + 1, (long long)state.step,
                      state.running_loss / recipe.print_every);
        progress.clear();
        if (log) log(line);
        state.running_loss = 0;
      }
      if (state.step % curve_every == 0 || state.step == steps_per_epoch) {
        state.loss_curve.push_back({state.epoch + double(state.step) / double(steps_per_epoch),
                                    state.curve_loss / double(state.curve_count)});
        state.curve_loss = 0;
        state.curve_count = 0;
      }
      const std::int64_t global_step = std::int64_t(state.epoch) * steps_per_epoch + state.step;
      if (!checkpoints.path.empty() && state.step < steps_per_epoch && checkpoints.every > 0 &&
          global_step % checkpoints.every == 0) {
        TrainState saved = state;
        saved.seconds += elapsed();
        save_checkpoint(checkpoints.path, recipe, net, sgd, saved);
      }
      if (checkpoints.kill_at_step > 0 && global_step == checkpoints.kill_at_step) std::raise(SIGKILL);
      const double seconds = elapsed();
      const double rate = seconds > 0 ? double(state.images_seen - images_before) / seconds : 0;
      const double remaining = double(recipe.epochs) * double(train_set.size()) - double(state.images_seen);
      progress.update(progress_prefix, state.epoch + 1, recipe.epochs, state.step, steps_per_epoch,
                      state.curve_count ? state.curve_loss / double(state.curve_count) : loss, rate,
                      rate > 0 ? remaining / rate : 0);
    }
    if (!checkpoints.path.empty()) {  // the end of an epoch: the next one starts from here
      TrainState saved = state;
      saved.epoch += 1;
      saved.step = 0;
      saved.running_loss = 0;
      saved.epoch_generator = loader.generator().state();
      saved.seconds += elapsed();
      save_checkpoint(checkpoints.path, recipe, net, sgd, saved);
    }
  }
  progress.clear();
  state.seconds += elapsed();
}

// A whole run from scratch: train, then evaluate on `test`.
inline RunResult train_and_evaluate(const Recipe& recipe, const ImageSet& train_set, const ImageSet& test,
                                    headnet::Sequential<float>& net, const std::function<void(const std::string&)>& log,
                                    Progress& progress, const std::string& progress_prefix = "",
                                    const CheckpointOptions& checkpoints = CheckpointOptions(),
                                    TrainState state = TrainState(), headnet::SGD<float>* resumed_sgd = nullptr) {
  headnet::SGD<float> fresh_sgd(net.parameters(), headnet::SGDOptions(recipe.lr).momentum(recipe.momentum));
  headnet::SGD<float>& sgd = resumed_sgd ? *resumed_sgd : fresh_sgd;
  train(recipe, train_set, net, sgd, state, log, progress, progress_prefix, checkpoints);
  RunResult result;
  result.recipe = recipe;
  result.loss_curve = state.loss_curve;
  result.train_seconds = state.seconds;
  result.images_per_second = state.seconds > 0 ? double(state.images_seen) / state.seconds : 0;
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
            "Per-class test accuracy, " + name + " (overall " + headnet::viz::detail::format(r.test.accuracy, 2) + "%)", class_names(),
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
