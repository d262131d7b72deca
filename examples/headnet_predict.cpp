// headnet-predict: classify image files with a trained model.
//
//   headnet-predict --model runs/fast/model.safetensors cat.jpg ship.png
//   headnet-predict --model model.onnx --top 3 --json photos/*.jpg
//
// The model is a safetensors file written by cifar10-train or cifar10-fast (or any of the zoo's
// architectures with --arch), or an ONNX file (io/onnx.hpp). The input size, the normalisation and
// the class names come from the file's metadata, as the trainers write them; --arch, --classes,
// --mean and --std override or supply them. Each image is decoded (PNG, JPEG, BMP, ...), its shorter
// side scaled to the input size (antialiased), its centre cut out, normalised, and classified.
// Prints the top-k classes with their probabilities, or JSON with --json (logits included).
// Exit codes: 0 done, 1 an unreadable model or image (the message names it), CLI11's for bad arguments.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <headnet/headnet.hpp>
#include <headnet/io/image.hpp>
#include <headnet/io/onnx.hpp>
#include <headnet/models/airbench.hpp>
#include <headnet/models/resnet.hpp>
#include <headnet/models/tutorial_net.hpp>

namespace {

using namespace headnet;

struct Model {
  std::unique_ptr<Layer<float>> net;
  int channels = 3, height = 32, width = 32;
  std::vector<float> mean, std_dev;
  std::vector<std::string> classes;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The normalisation and class names in a file's metadata, where they are.
void read_metadata(const std::map<std::string, std::string>& meta, const std::string& file, Model& m) {
  try {
    if (meta.count("normalization")) {
      const auto j = nlohmann::json::parse(meta.at("normalization"));
      m.mean = j.at("mean").get<std::vector<float>>();
      m.std_dev = j.at("std").get<std::vector<float>>();
    }
    if (meta.count("classes")) m.classes = nlohmann::json::parse(meta.at("classes")).get<std::vector<std::string>>();
    if (meta.count("input_size")) {
      const auto size = nlohmann::json::parse(meta.at("input_size")).get<std::vector<int>>();
      if (size.size() != 3) throw DataError("input_size must be [channels, height, width]");
      m.channels = size[0], m.height = size[1], m.width = size[2];
    }
  } catch (const nlohmann::json::exception& e) {
    throw DataError(file + ": malformed metadata: " + e.what());
  }
}

Model load_model(const std::string& file, std::string arch) {
  Model m;
  if (ends_with(file, ".onnx")) {
    io::OnnxInfo info;
    auto graph = std::make_unique<Graph<float>>(io::load_onnx<float>(file, &info));
    read_metadata(info.metadata, file, m);
    if (info.input_shape.rank() != 4) throw DataError(file + ": the model's input is " + info.input_shape.str() + ", not an image batch");
    m.channels = int(info.input_shape[1]), m.height = int(info.input_shape[2]), m.width = int(info.input_shape[3]);
    m.net = std::move(graph);
    return m;
  }
  const auto st = io::read_safetensors(file);
  if (st.metadata.count("headnet_checkpoint")) {
    throw DataError(file + ": this is a training checkpoint; give the run's model.safetensors (or --arch and a state dict)");
  }
  read_metadata(st.metadata, file, m);
  if (arch.empty()) {
    if (st.metadata.count("arch")) arch = st.metadata.at("arch");
    else if (st.metadata.count("fast_recipe")) arch = "airbench";
    else if (st.metadata.count("conv1")) arch = "tutorial";
    else throw DataError(file + ": the file does not say which network it holds: give --arch");
  }
  auto rows = [&](const std::string& name) -> int {
    auto it = st.tensors.find(name);
    if (it == st.tensors.end() || it->second.shape.empty()) throw DataError(file + ": no tensor '" + name + "' for --arch " + arch);
    return int(it->second.shape[0]);
  };
  if (arch == "tutorial") {
    m.net = std::make_unique<Sequential<float>>(
        models::tutorial_net<float>(rows("conv1.weight"), rows("conv2.weight"), m.channels, m.height, m.width, rows("fc3.weight")));
    if (m.mean.empty()) m.mean = {0.5f, 0.5f, 0.5f}, m.std_dev = {0.5f, 0.5f, 0.5f};  // the tutorial's
  } else if (arch == "airbench" || arch == "fast") {
    m.net = std::make_unique<Sequential<float>>(
        models::airbench<float>(rows("block1.conv1.weight"), rows("block2.conv1.weight"), rows("block3.conv1.weight"), rows("head.weight"),
                                m.channels));
    if (m.mean.empty()) m.mean = {0.4914f, 0.4822f, 0.4465f}, m.std_dev = {0.2470f, 0.2435f, 0.2616f};
  } else if (arch == "resnet9") {
    m.net = std::make_unique<Sequential<float>>(models::resnet9<float>(rows("linear.weight")));
  } else if (arch == "resnet18_cifar") {
    m.net = std::make_unique<Sequential<float>>(models::resnet18_cifar<float>(rows("linear.weight")));
  } else {
    throw Error("--arch must be tutorial, airbench (fast), resnet9 or resnet18_cifar, got '" + arch + "'");
  }
  try {
    m.net->load_state_dict(io::load_safetensors<float>(file));
  } catch (const DataError&) {
    throw;
  } catch (const Error& e) {
    throw DataError(file + ": does not fit --arch " + arch + ": " + e.what());
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Classify images with a headnet model (safetensors from the trainers, or ONNX)", "headnet-predict"};
  std::string model_file, arch, classes_file;
  std::vector<std::string> images;
  std::vector<float> mean, std_dev;
  int top = 5, threads = 0, batch = 64;
  bool json = false;
  app.add_option("--model", model_file, "model.safetensors from cifar10-train/cifar10-fast, or an .onnx file")
      ->required()->check(CLI::ExistingFile);
  app.add_option("--arch", arch, "Network of a safetensors file: tutorial, airbench (fast), resnet9, resnet18_cifar "
                                 "(default: from the file's metadata)");
  app.add_option("--classes", classes_file, "Text file with one class name per line (default: from the file, else CIFAR-10's)")
      ->check(CLI::ExistingFile);
  app.add_option("--mean", mean, "Per-channel mean of pixels in [0, 1] (default: from the file)")->expected(1, 3);
  app.add_option("--std", std_dev, "Per-channel standard deviation (default: from the file)")->expected(1, 3);
  app.add_option("--top", top, "How many classes to print per image")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--batch", batch, "Images classified together")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--threads", threads, "Threads (0: all cores)")->capture_default_str()->check(CLI::Range(0, 1024));
  app.add_flag("--json", json, "Print JSON (with the logits) instead of text");
  app.add_option("images", images, "Image files (PNG, JPEG, BMP)")->required();
  CLI11_PARSE(app, argc, argv);

  try {
    if (threads > 0) set_num_threads(threads);
    const std::string arch_name = arch == "fast" ? "airbench" : arch;
    Model m = load_model(model_file, arch_name);
    if (!mean.empty()) m.mean = mean;
    if (!std_dev.empty()) m.std_dev = std_dev;
    if (m.mean.empty()) {
      throw DataError(model_file + ": the file has no normalisation in its metadata: give --mean and --std (pixels in [0, 1])");
    }
    if (m.mean.size() == 1) m.mean.assign(std::size_t(m.channels), m.mean[0]);
    if (m.std_dev.size() == 1) m.std_dev.assign(std::size_t(m.channels), m.std_dev[0]);
    if (int(m.mean.size()) != m.channels || int(m.std_dev.size()) != m.channels) {
      throw Error("the normalisation has " + std::to_string(m.mean.size()) + " means and " + std::to_string(m.std_dev.size()) +
                  " standard deviations for a model of " + std::to_string(m.channels) + " channels");
    }
    if (!classes_file.empty()) {
      m.classes.clear();
      std::ifstream in(classes_file);
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) m.classes.push_back(line);
    }
    m.net->eval();
    const Shape one{1, m.channels, m.height, m.width};
    const Shape out = m.net->output_shape(one);
    const int n_classes = int(out.numel());
    if (m.classes.empty()) {
      if (n_classes == 10) m.classes = {"plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
      for (int c = 0; c < n_classes && m.classes.size() < std::size_t(n_classes); ++c) m.classes.push_back("class " + std::to_string(c));
    }
    if (int(m.classes.size()) != n_classes) {
      throw Error("the model has " + std::to_string(n_classes) + " outputs but " + std::to_string(m.classes.size()) + " class names were given");
    }
    top = std::min(top, n_classes);

    nlohmann::json results = nlohmann::json::array();
    const std::int64_t image_size = one.numel();
    Tensor<float> x;
    Tensor<float> all_logits;
    for (std::size_t i = 0; i < images.size(); ++i) {
      // Images are classified `batch` at a time, as a loader would hand them to the model.
      if (i % std::size_t(batch) == 0) {
        const std::size_t n = std::min(images.size() - i, std::size_t(batch));
        x.resize(Shape{std::int64_t(n), m.channels, m.height, m.width});
        for (std::size_t k = 0; k < n; ++k) {
          const io::Image img = io::resize_and_crop(io::read_image(images[i + k], m.channels), m.width, m.height);
          io::image_to_tensor(img, m.mean, m.std_dev, x.data() + std::int64_t(k) * image_size);
        }
        all_logits = m.net->forward(x).clone();
      }
      const std::string& path = images[i];
      const Tensor<float> logits = all_logits.slice(std::int64_t(i % std::size_t(batch)), std::int64_t(i % std::size_t(batch)) + 1);
      std::vector<double> p(static_cast<std::size_t>(n_classes));
      const float top_logit = *std::max_element(logits.begin(), logits.end());
      double sum = 0;
      for (int c = 0; c < n_classes; ++c) sum += p[std::size_t(c)] = std::exp(double(logits.data()[c]) - top_logit);
      std::vector<int> order(static_cast<std::size_t>(n_classes));
      for (int c = 0; c < n_classes; ++c) order[std::size_t(c)] = c, p[std::size_t(c)] /= sum;
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[std::size_t(a)] > p[std::size_t(b)]; });
      if (json) {
        nlohmann::json entry{{"image", path}, {"top", nlohmann::json::array()}, {"logits", std::vector<float>(logits.begin(), logits.end())}};
        for (int k = 0; k < top; ++k) {
          const int c = order[std::size_t(k)];
          entry["top"].push_back({{"class", m.classes[std::size_t(c)]}, {"index", c}, {"probability", p[std::size_t(c)]}});
        }
        results.push_back(entry);
      } else {
        std::printf("%s:", path.c_str());
        for (int k = 0; k < top; ++k) {
          const int c = order[std::size_t(k)];
          std::printf("%s %s %.3f", k ? "," : "", m.classes[std::size_t(c)].c_str(), p[std::size_t(c)]);
        }
        std::printf("\n");
      }
    }
    if (json) std::printf("%s\n", results.dump(1).c_str());
    return 0;
  } catch (const DataError& e) {
    std::fprintf(stderr, "headnet-predict: error: %s\n", e.what());
    return 1;
  } catch (const Error& e) {
    std::fprintf(stderr, "headnet-predict: error: %s\n", e.what());
    return 1;
  }
}
