// examples/cifar10_common.hpp: the tutorial's recipe, shared by cifar10-train and cifar10-sweep:
// finding the data, one training run on headnet's Trainer, and writing results and charts.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <headnet/data/cifar10.hpp>
#include <headnet/data/image_folder.hpp>
#include <headnet/data/mnist.hpp>
#include <headnet/headnet.hpp>
#include <headnet/io/onnx.hpp>
#include <headnet/models/tutorial_net.hpp>
#include <headnet/train/distributed.hpp>
#include <headnet/viz/chart.hpp>
#ifdef HEADNET_WITH_MPI
#include <headnet/dist/data_parallel.hpp>
#endif

namespace cifar10 {

using headnet::data::Cifar10;
using headnet::data::ImageSet;
using headnet::train::Evaluation;

// The tutorial's hyperparameters (and the sweep's widths): one struct, printed into results.json.
struct Recipe {
  int epochs = 2;
  int batch = 4;
  double lr = 0.001;
  double momentum = 0.9;       // SGD's momentum, or Adam's beta1
  std::string optimizer = "sgd";  // sgd, adam or adamw
  double weight_decay = 0;
  std::string schedule = "none";  // none, cosine or onecycle, stepped every batch
  int conv1 = 6;
  int conv2 = 16;
  std::uint64_t seed = 0;
  int threads = 0;            // 0: all cores
  int print_every = 2000;     // mini-batches between the tutorial's loss lines
  int eval_batch = 1000;
  // The data: cifar10 (from --data), or KIND:PATH with KIND mnist, fashion-mnist, cifar100 or
  // imagefolder; image_size for image folders; val_fraction > 0 evaluates on that fraction of the
  // training images, held out, instead of the test set (image folders have no test set: 0.2).
  std::string dataset = "cifar10";
  int image_size = 32;
  double val_fraction = 0;
  // An image folder larger than this many MB of decoded images is streamed from disk (-1: half the
  // machine's memory). Not part of the recipe: cached and streamed runs give the same results.
  std::int64_t image_cache_mb = -1;

  nlohmann::json to_json() const {
    nlohmann::json j = {{"epochs", epochs}, {"batch", batch}, {"lr", lr},     {"momentum", momentum},
                        {"conv1", conv1},   {"conv2", conv2}, {"seed", seed}, {"threads", threads}};
    if (optimizer != "sgd" || weight_decay != 0 || schedule != "none") {  // the tutorial's results.json stays as it was
      j["optimizer"] = optimizer;
      j["weight_decay"] = weight_decay;
      j["schedule"] = schedule;
    }
    if (dataset != "cifar10" || val_fraction > 0) {
      j["dataset"] = dataset;
      j["image_size"] = image_size;
      j["val_fraction"] = val_fraction;
    }
    return j;
  }
  static Recipe from_json(const nlohmann::json& j) {
    Recipe r;
    r.epochs = j.at("epochs");
    r.batch = j.at("batch");
    r.lr = j.at("lr");
    r.momentum = j.at("momentum");
    r.conv1 = j.at("conv1");
    r.conv2 = j.at("conv2");
    r.seed = j.at("seed");
    r.threads = j.at("threads");
    r.optimizer = j.value("optimizer", r.optimizer);
    r.weight_decay = j.value("weight_decay", r.weight_decay);
    r.schedule = j.value("schedule", r.schedule);
    r.dataset = j.value("dataset", r.dataset);
    r.image_size = j.value("image_size", r.image_size);
    r.val_fraction = j.value("val_fraction", r.val_fraction);
    return r;
  }
};

struct RunResult {
  Recipe recipe;
  std::vector<std::string> classes;  // the evaluation set's class names
  std::vector<std::pair<double, double>> loss_curve;  // (epoch as a fraction, mean loss since the last point)
  Evaluation test;
  double train_seconds = 0;
  double images_per_second = 0;
};

// How one run reports and checkpoints.
// The processes of a run: MPI's when the trainers are built with it (HEADNET_WITH_MPI) and started
// by mpirun, otherwise one process. Only rank 0 prints and writes files.
#ifdef HEADNET_WITH_MPI
using Session = headnet::dist::Session;
// The runtime that keeps the ranks' replicas equal, or null for one process.
inline std::unique_ptr<headnet::train::Distributed> data_parallel(Session& session, headnet::Layer<float>& net,
                                                                  bool sum_gradients = false, bool sync_batchnorm = false) {
  if (!session.active()) return nullptr;
  headnet::dist::DataParallelOptions o;
  o.sum_gradients = sum_gradients;
  o.sync_batchnorm = sync_batchnorm;
  return std::make_unique<headnet::dist::DataParallel<float>>(net, MPI_COMM_WORLD, o);
}
#else
struct Session {
  Session(int&, char**&) {}
  bool active() const { return false; }
  int rank() const { return 0; }
  int size() const { return 1; }
  int abort(const std::string& program, const std::string& message, int code = 1) {
    std::fprintf(stderr, "%s: error: %s\n", program.c_str(), message.c_str());
    return code;
  }
};
inline std::unique_ptr<headnet::train::Distributed> data_parallel(Session&, headnet::Layer<float>&, bool = false, bool = false) {
  return nullptr;
}
#endif

// Ranks other than 0 stay silent: their stdout goes nowhere (errors still reach stderr).
inline void quiet_unless_main(const Session& session) {
  if (session.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) std::fclose(stdout);
}

// The global batch must split evenly over the processes.
inline void check_batch_splits(int batch, int world) {
  if (batch % world != 0) {
    throw headnet::Error("--batch " + std::to_string(batch) + " does not split evenly over " + std::to_string(world) +
                         " processes (each takes batch / processes images per step)");
  }
}

struct RunOptions {
  std::function<void(const std::string&)> log;  // the tutorial's loss lines; may be empty
  // Data-parallel runs (mpirun): this process's rank and the number of processes; the runtime that
  // keeps the replicas equal (null for one process). The recipe's batch is the global one.
  int rank = 0, world = 1;
  headnet::train::Distributed* distributed = nullptr;
  bool progress = true;
  std::string progress_prefix;
  std::string checkpoint_path;      // empty: no checkpoints
  std::int64_t checkpoint_every = 2000;
  std::int64_t kill_at_step = 0;    // testing only
  std::string resume_from;          // a checkpoint to continue from
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

inline Evaluation evaluate(headnet::Layer<float>& net, const ImageSet& set, int batch) {
  headnet::data::BatchLoader loader(set, batch, false, 0);
  return headnet::train::evaluate(net, loader);
}

// The recipe stored in a checkpoint (to build the network before loading it).
inline Recipe checkpoint_recipe(const std::string& path) {
  const auto metadata = headnet::train::Trainer::checkpoint_metadata_of(path);
  if (!metadata.count("headnet_checkpoint") || !metadata.count("recipe")) {
    throw headnet::DataError("'" + path + "' is not a headnet checkpoint of cifar10-train (its metadata lacks a recipe)");
  }
  try {
    return Recipe::from_json(nlohmann::json::parse(metadata.at("recipe")));
  } catch (const nlohmann::json::exception& e) {
    throw headnet::DataError("checkpoint '" + path + "': malformed recipe: " + e.what());
  }
}

// The recipe's optimiser over the network's trainable parameters.
inline std::unique_ptr<headnet::Optimizer<float>> make_optimizer(const Recipe& r, headnet::Layer<float>& net) {
  using namespace headnet;
  if (r.optimizer == "adam")
    return std::make_unique<Adam<float>>(net.parameters(), AdamOptions(r.lr).betas(r.momentum, 0.999).weight_decay(r.weight_decay));
  if (r.optimizer == "adamw")
    return std::make_unique<AdamW<float>>(net.parameters(), AdamWOptions(r.lr).betas(r.momentum, 0.999).weight_decay(r.weight_decay));
  if (r.optimizer != "sgd") throw Error("unknown optimizer '" + r.optimizer + "' (sgd, adam or adamw)");
  return std::make_unique<SGD<float>>(net.parameters(), SGDOptions(r.lr).momentum(r.momentum).weight_decay(r.weight_decay));
}

// The recipe's schedule over all steps of the run (null for none).
inline std::unique_ptr<headnet::LRScheduler<float>> make_schedule(const Recipe& r, headnet::Optimizer<float>& opt,
                                                                 std::int64_t total_steps) {
  using namespace headnet;
  if (r.schedule == "cosine") return std::make_unique<CosineAnnealingLR<float>>(opt, total_steps);
  if (r.schedule == "onecycle") {
    OneCycleOptions o;
    o.cycle_momentum = r.momentum > 0;
    return std::make_unique<OneCycleLR<float>>(opt, r.lr, total_steps, o);
  }
  if (r.schedule != "none") throw Error("unknown schedule '" + r.schedule + "' (none, cosine or onecycle)");
  return nullptr;
}

// One run: the recipe's optimiser (the tutorial's SGD by default) and schedule, batches shuffled
// from the recipe's seed, the tutorial's loss line every print_every steps; then the test set.
inline RunResult train_and_evaluate(const Recipe& recipe, const ImageSet& train_set, const ImageSet& test,
                                    headnet::Sequential<float>& net, const RunOptions& run = RunOptions()) {
  headnet::data::BatchLoader loader(train_set, recipe.batch / run.world, true, recipe.seed);
  if (run.distributed) loader.set_shard(run.rank, run.world);
  const auto optimizer = make_optimizer(recipe, net);
  const auto schedule = make_schedule(recipe, *optimizer, loader.batches_per_epoch() * recipe.epochs);
  headnet::train::TrainerOptions options;
  options.epochs = recipe.epochs;
  options.log_every = recipe.print_every;
  options.progress = run.progress;
  options.progress_prefix = run.progress_prefix;
  options.checkpoint_path = run.checkpoint_path;
  options.checkpoint_every = run.checkpoint_every;
  options.debug_kill_at_step = run.kill_at_step;
  headnet::train::Trainer trainer(net, *optimizer, loader, options);
  trainer.set_distributed(run.distributed);
  trainer.set_scheduler(schedule.get());
  trainer.checkpoint_metadata = {{"recipe", recipe.to_json().dump()}};
  trainer.on_log = [&](int epoch, std::int64_t step, double mean_loss) {
    char line[64];
    std::snprintf(line, sizeof line, "[%d, %5lld] loss: %.3f", epoch + 1, (long long)step, mean_loss);
    if (run.log) run.log(line);
  };
  if (!run.resume_from.empty()) {
    trainer.load_checkpoint(run.resume_from);
    if (run.log)
      run.log("Resuming " + run.resume_from + " at epoch " + std::to_string(trainer.state().epoch + 1) + ", step " +
              std::to_string(trainer.state().step));
  }
  trainer.fit();
  RunResult result;
  result.recipe = recipe;
  result.loss_curve = trainer.state().loss_curve;
  result.train_seconds = trainer.state().seconds;
  result.images_per_second = trainer.images_per_second();
  result.test = evaluate(net, test, recipe.eval_batch);
  result.classes = test.names();
  return result;
}

inline std::vector<std::string> class_names() {
  return std::vector<std::string>(Cifar10::class_names().begin(), Cifar10::class_names().end());
}

inline nlohmann::json evaluation_json(const Evaluation& e, const std::vector<std::string>& names = class_names()) {
  nlohmann::json per_class = nlohmann::json::object();
  for (std::size_t c = 0; c < names.size() && c < e.class_accuracy.size(); ++c) per_class[names[c]] = e.class_accuracy[c];
  return {{"test_accuracy", e.accuracy}, {"class_accuracy", per_class}, {"confusion_matrix", e.confusion}};
}

inline nlohmann::json run_json(const RunResult& r) {
  nlohmann::json j = evaluation_json(r.test, r.classes.empty() ? class_names() : r.classes);
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
  const std::vector<std::string> names = r.classes.empty() ? class_names() : r.classes;
  bar_chart(folder + "/class_accuracy.png",
            "Per-class test accuracy, " + name + " (overall " + fixed(r.test.accuracy, 2) + "%)", names,
            r.test.class_accuracy, "accuracy (%)", 100);
  LineSeries loss{"training loss", {}, {}};
  for (const auto& p : r.loss_curve) loss.x.push_back(p.first), loss.y.push_back(p.second);
  line_chart(folder + "/loss.png", "Training loss, " + name, "epoch", "cross-entropy loss", {loss});
  heatmap(folder + "/confusion.png", "Confusion matrix, " + name, names, r.test.confusion, "true class",
          "predicted class");
}

inline void write_text_atomically(const std::string& path, const std::string& text) {
  headnet::io::write_file_atomically(path, text);
}

// The tutorial's picture: the first four test images with their true and predicted classes, printed
// as the tutorial prints them ("GroundTruth:  cat   ship  ship  plane") and drawn into a PNG.
inline void show_test_images(headnet::Layer<float>& net, const ImageSet& test, const std::string& png_path) {
  const int n = int(std::min<std::int64_t>(4, test.size()));
  headnet::data::BatchLoader loader(test, n, false, 0);
  headnet::Tensor<float> images;
  std::vector<std::int32_t> labels;
  loader.next(images, labels);
  net.eval();
  const headnet::Tensor<float> logits = net.forward(images);
  std::vector<int> predicted;
  std::string truth_line = "GroundTruth: ", predicted_line = "Predicted: ";
  char word[16];
  for (int i = 0; i < n; ++i) {
    const float* row = logits.data() + i * logits.size(1);
    predicted.push_back(int(std::max_element(row, row + logits.size(1)) - row));
    std::snprintf(word, sizeof word, " %-5s", test.class_name(labels[std::size_t(i)]).c_str());
    truth_line += word;
    std::snprintf(word, sizeof word, " %-5s", test.class_name(predicted.back()).c_str());
    predicted_line += word;
  }
  std::printf("%s\n%s\n", truth_line.c_str(), predicted_line.c_str());
  // Each image 4x (nearest), its true class above and the prediction below (green right, red wrong).
  const int zoom = std::max(1, 128 / std::max(test.height, test.width)), side_w = test.width * zoom, side = test.height * zoom;
  const int pad = 12, caption = 24;
  const std::int64_t plane = std::int64_t(test.height) * test.width;
  headnet::viz::Canvas canvas(pad + n * (side_w + pad), 2 * caption + side + 2 * pad);
  for (int i = 0; i < n; ++i) {
    const int x0 = pad + i * (side_w + pad), y0 = pad + caption;
    std::vector<std::uint8_t> scratch(std::size_t(test.image_bytes()));
    const std::uint8_t* px = test.image(i, scratch.data());
    const std::int64_t g = test.channels >= 3 ? plane : 0, b = test.channels >= 3 ? 2 * plane : 0;  // gray: one plane
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side_w; ++x) {
        const std::int64_t k = std::int64_t(y / zoom) * test.width + x / zoom;
        canvas.pixel(x0 + x, y0 + y, {px[k], px[g + k], px[b + k]});
      }
    const bool right = predicted[std::size_t(i)] == labels[std::size_t(i)];
    canvas.text_centered(x0 + side_w / 2, pad, test.class_name(labels[std::size_t(i)]));
    canvas.text_centered(x0 + side_w / 2, y0 + side + 6, test.class_name(predicted[std::size_t(i)]), 2,
                         right ? headnet::viz::Color{30, 140, 30} : headnet::viz::Color{200, 30, 30});
  }
  canvas.save_png(png_path);
}

// What headnet-predict needs to use a model file: the architecture, the input size, the
// normalisation and the class names, as safetensors metadata (the ONNX files carry the same).
inline std::map<std::string, std::string> model_metadata(const std::string& arch, const headnet::data::Normalization& n,
                                                         const ImageSet& set = ImageSet()) {
  const std::vector<float> mean(n.mean.begin(), n.mean.begin() + set.channels), std_dev(n.std.begin(), n.std.begin() + set.channels);
  return {{"arch", arch},
          {"input_size", nlohmann::json{set.channels, set.height, set.width}.dump()},
          {"normalization", nlohmann::json{{"mean", mean}, {"std", std_dev}}.dump()},
          {"classes", nlohmann::json(set.names()).dump()}};
}

// The recipe's data: (training set, evaluation set).
inline std::pair<ImageSet, ImageSet> load_data(const Recipe& r, const std::string& data_dir) {
  using namespace headnet::data;
  std::pair<ImageSet, ImageSet> sets;
  if (r.dataset == "cifar10") {
    const std::string folder = find_data_folder(data_dir);
    sets = {read_cifar10_train(folder), read_cifar10_test(folder)};
  } else {
    const auto colon = r.dataset.find(':');
    const std::string kind = r.dataset.substr(0, colon), path = colon == std::string::npos ? "" : r.dataset.substr(colon + 1);
    if (path.empty()) throw headnet::Error("--dataset " + r.dataset + ": give KIND:PATH (e.g. mnist:data/mnist)");
    if (kind == "mnist") sets = {read_mnist(path, true), read_mnist(path, false)};
    else if (kind == "fashion-mnist") sets = {read_mnist(path, true, fashion_mnist_classes()), read_mnist(path, false, fashion_mnist_classes())};
    else if (kind == "cifar100") sets = {read_cifar100(path, true), read_cifar100(path, false)};
    else if (kind == "imagefolder") {
      const std::int64_t cache = r.image_cache_mb < 0 ? default_image_cache_bytes() : r.image_cache_mb << 20;
      sets.first = read_image_folder(path, r.image_size, r.image_size, 3, cache);
      if (sets.first.streamed()) {
        std::printf("imagefolder: %lld images are streamed from disk (%lld MB decoded, more than the %lld MB cache)\n",
                    static_cast<long long>(sets.first.size()),
                    static_cast<long long>((sets.first.size() * sets.first.image_bytes()) >> 20), static_cast<long long>(cache >> 20));
      }
    }
    else throw headnet::Error("--dataset: unknown kind '" + kind + "' (cifar10, mnist, fashion-mnist, cifar100, imagefolder)");
    if (kind == "imagefolder" && !(r.val_fraction > 0)) throw headnet::Error("--dataset imagefolder needs --val-fraction > 0");
  }
  if (r.val_fraction > 0) sets.second = split_off(sets.first, r.val_fraction, r.seed);
  if (sets.first.size() == 0 || sets.second.size() == 0) {
    throw headnet::DataError("--dataset " + r.dataset + ": " + std::to_string(sets.first.size()) + " training and " +
                             std::to_string(sets.second.size()) + " evaluation images: too few for a run");
  }
  return sets;
}

// Writes `net` as an ONNX model for (N, C, H, W) inputs of `set`'s shape, with model_metadata() and the program
// and its recipe in the file's metadata_props.
inline void export_onnx(const std::string& path, headnet::Layer<float>& net, std::map<std::string, std::string> metadata,
                        const ImageSet& set = ImageSet()) {
  headnet::io::OnnxExportOptions options;
  options.output_name = "logits";
  options.metadata = std::move(metadata);
  headnet::io::save_onnx(path, net, headnet::Shape{1, set.channels, set.height, set.width}, options);
}

}  // namespace cifar10
