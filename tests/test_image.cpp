// Image files: decoding PNG, JPEG and BMP (gray, RGB, RGBA, odd sizes) through io/image.hpp, the
// antialiased resize, the centre crop, the normalisation, and refusals naming the file.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <headnet/io/image.hpp>
#include <headnet/viz/chart.hpp>  // stb_image_write, to make the test's files

using namespace headnet;

namespace {

std::vector<unsigned char> pattern(int w, int h, int c) {
  std::vector<unsigned char> p(std::size_t(w * h * c));
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<unsigned char>(i * 37 % 251);
  return p;
}

std::string path_of(const std::string& name) { return "image_test_" + name; }

void write_image_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

std::string read_image_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("Images: PNG gray, RGB and RGBA at odd sizes decode to their exact pixels", "[image]") {
  const auto rgb = pattern(7, 5, 3), gray = pattern(9, 4, 1), rgba = pattern(6, 3, 4);
  REQUIRE(stbi_write_png(path_of("rgb.png").c_str(), 7, 5, 3, rgb.data(), 7 * 3));
  REQUIRE(stbi_write_png(path_of("gray.png").c_str(), 9, 4, 1, gray.data(), 9));
  REQUIRE(stbi_write_png(path_of("rgba.png").c_str(), 6, 3, 4, rgba.data(), 6 * 4));

  const io::Image a = io::read_image(path_of("rgb.png"));
  CHECK((a.width == 7 && a.height == 5 && a.channels == 3));
  for (std::size_t i = 0; i < rgb.size(); ++i) CHECK(a.pixels[i] == float(rgb[i]));

  const io::Image g = io::read_image(path_of("gray.png"));  // as in the file: one channel
  CHECK(g.channels == 1);
  for (std::size_t i = 0; i < gray.size(); ++i) CHECK(g.pixels[i] == float(gray[i]));
  const io::Image g3 = io::read_image(path_of("gray.png"), 3);  // gray repeated
  CHECK(g3.channels == 3);
  CHECK((g3.at(2, 5, 0) == float(gray[2 * 9 + 5]) && g3.at(2, 5, 1) == float(gray[2 * 9 + 5]) && g3.at(2, 5, 2) == float(gray[2 * 9 + 5])));

  const io::Image c = io::read_image(path_of("rgba.png"));  // alpha dropped
  CHECK(c.channels == 3);
  CHECK(c.at(1, 4, 2) == float(rgba[(1 * 6 + 4) * 4 + 2]));
  for (const char* f : {"rgb.png", "gray.png", "rgba.png"}) std::remove(path_of(f).c_str());
}

TEST_CASE("Images: JPEG and BMP decode close to and exactly at their pixels", "[image]") {
  std::vector<unsigned char> smooth(16 * 12 * 3);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x)
      for (int ch = 0; ch < 3; ++ch) smooth[std::size_t((y * 16 + x) * 3 + ch)] = static_cast<unsigned char>(60 + 8 * x + 5 * y + 20 * ch);
  // The JPEG is a file of the repository (this pattern, written by stbi_write_jpg at quality 95):
  // stb's JPEG writer shifts negative values, which UBSan refuses in the sanitizer build.
  const std::string jpeg_path = std::string(HEADNET_TEST_DATA_DIR) + "/images/smooth_16x12.jpg";
  REQUIRE(stbi_write_bmp(path_of("p.bmp").c_str(), 16, 12, 3, smooth.data()));
  const io::Image j = io::read_image(jpeg_path);
  REQUIRE((j.width == 16 && j.height == 12 && j.channels == 3));
  double worst = 0;
  for (std::size_t i = 0; i < smooth.size(); ++i) worst = std::max(worst, double(std::fabs(j.pixels[i] - smooth[i])));
  CHECK(worst < 20);  // lossy (stb writes 4:2:0 chroma), but close
  const io::Image b = io::read_image(path_of("p.bmp"));
  for (std::size_t i = 0; i < smooth.size(); ++i) CHECK(b.pixels[i] == float(smooth[i]));
  std::remove(path_of("p.bmp").c_str());
}

TEST_CASE("Images: resize keeps same-size images, antialiases when shrinking; crop takes the centre", "[image]") {
  io::Image img;
  img.width = 8, img.height = 6, img.channels = 1;
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) img.pixels.push_back((x + y) % 2 ? 255.f : 0.f);  // a checkerboard
  const io::Image same = io::resize(img, 8, 6);
  CHECK(same.pixels == img.pixels);
  // Halving a checkerboard: every output pixel covers both colours equally, so all are mid-gray
  // (a resize that only interpolated between neighbours would keep the pattern).
  const io::Image half = io::resize(img, 4, 3);
  REQUIRE(half.pixels.size() == 12);
  CHECK(half.at(1, 1, 0) == Approx(127.5).margin(1e-3));  // inside: exactly half
  CHECK(half.at(1, 2, 0) == Approx(127.5).margin(1e-3));
  for (float v : half.pixels) CHECK((v > 100 && v < 155));  // at the borders the filter is cut, still no pattern
  // Enlarging a constant image keeps it constant.
  io::Image flat;
  flat.width = 3, flat.height = 2, flat.channels = 3;
  flat.pixels.assign(18, 42.f);
  for (float v : io::resize(flat, 7, 5).pixels) CHECK(v == Approx(42.f));
  // Centre crop of a 5x4 numbered image to 3x2: columns 1-3, rows 1-2.
  io::Image numbered;
  numbered.width = 5, numbered.height = 4, numbered.channels = 1;
  for (int i = 0; i < 20; ++i) numbered.pixels.push_back(float(i));
  CHECK(io::center_crop(numbered, 3, 2).pixels == std::vector<float>{6, 7, 8, 11, 12, 13});
  CHECK_THROWS_WITH(io::center_crop(numbered, 6, 2), Catch::Contains("cannot cut 6x2 out of 5x4"));
  // resize_and_crop: a 64x32 image to 16x16 scales to 32x16, then cuts the middle.
  io::Image wide;
  wide.width = 64, wide.height = 32, wide.channels = 1;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 64; ++x) wide.pixels.push_back(x < 16 || x >= 48 ? 0.f : 200.f);
  const io::Image sq = io::resize_and_crop(wide, 16, 16);
  CHECK((sq.width == 16 && sq.height == 16));
  CHECK(sq.at(8, 8, 0) == Approx(200.f).margin(1e-3));  // the bright middle half fills the crop
  CHECK(sq.at(8, 0, 0) > 150.f);                         // blurred only by the filter at its edges
  CHECK(sq.at(8, 15, 0) > 150.f);
}

TEST_CASE("Images: normalisation is the loader's arithmetic, channel planes in order", "[image]") {
  io::Image img;
  img.width = 2, img.height = 1, img.channels = 3;
  img.pixels = {0, 128, 255, 10, 20, 30};
  std::vector<float> out(6);
  io::image_to_tensor(img, {0.5f, 0.4f, 0.3f}, {0.25f, 0.5f, 2.f}, out.data());
  CHECK(out[0] == (0 / 255.0f - 0.5f) / 0.25f);
  CHECK(out[1] == (10 / 255.0f - 0.5f) / 0.25f);
  CHECK(out[2] == (128 / 255.0f - 0.4f) / 0.5f);
  CHECK(out[5] == (30 / 255.0f - 0.3f) / 2.f);
  CHECK_THROWS_WITH(io::image_to_tensor(img, {0.5f}, {0.5f}, out.data()), Catch::Contains("1 channels, the image 3"));
}

TEST_CASE("Images: missing, empty, garbage, truncated and oversized files are refused, naming them", "[image][errors]") {
  CHECK_THROWS_WITH(io::read_image(path_of("missing.png")), Catch::Contains("image_test_missing.png: cannot open"));
  write_image_bytes(path_of("empty.png"), "");
  CHECK_THROWS_WITH(io::read_image(path_of("empty.png")), Catch::Contains("image_test_empty.png: the file is empty"));
  write_image_bytes(path_of("text.png"), "hello, this is not an image");
  CHECK_THROWS_WITH(io::read_image(path_of("text.png")), Catch::Contains("image_test_text.png: not an image headnet can read"));
  const auto rgb = pattern(31, 17, 3);
  REQUIRE(stbi_write_png(path_of("whole.png").c_str(), 31, 17, 3, rgb.data(), 31 * 3));
  const std::string whole = read_image_bytes(path_of("whole.png"));
  int refused = 0;
  for (std::size_t cut = 1; cut < whole.size(); cut += 7) {
    try {
      io::decode_image(reinterpret_cast<const unsigned char*>(whole.data()), cut, "cut.png", 3);
    } catch (const DataError& e) {
      CHECK(std::string(e.what()).rfind("cut.png: ", 0) == 0);
      ++refused;
    }
  }
  CHECK(refused > 0);
  auto decode = [](const std::string& bytes, const char* name) {
    return io::decode_image(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), name, 3);
  };
  // stb_image decodes a cut-off JPEG or BMP as if zeros followed; headnet refuses them.
  const std::string jpeg_file = read_image_bytes(std::string(HEADNET_TEST_DATA_DIR) + "/images/smooth_16x12.jpg");
  REQUIRE(jpeg_file.substr(jpeg_file.size() - 2) == "\xFF\xD9");
  CHECK_NOTHROW(decode(jpeg_file, "whole.jpg"));
  for (std::size_t cut : {std::size_t(2), std::size_t(40), jpeg_file.size() / 2}) {
    CHECK_THROWS_WITH(decode(jpeg_file.substr(0, jpeg_file.size() - cut), "cut.jpg"),
                      Catch::Contains("cut.jpg: truncated JPEG (no end-of-image marker)"));
  }
  REQUIRE(stbi_write_bmp(path_of("whole.bmp").c_str(), 31, 17, 3, rgb.data()));
  const std::string bmp = read_image_bytes(path_of("whole.bmp"));
  CHECK_NOTHROW(decode(bmp, "whole.bmp"));
  CHECK_THROWS_WITH(decode(bmp.substr(0, bmp.size() - 1), "cut.bmp"), Catch::Contains("cut.bmp: truncated BMP (the header claims"));
  CHECK_THROWS_WITH(decode(bmp.substr(0, 200), "cut.bmp"), Catch::Contains("cut.bmp: truncated BMP"));
  // A 400-byte PNG whose IDAT chunk claims 2 GB (stb_image would allocate it), and one whose header
  // claims 8000 x 8000 pixels over a few hundred bytes of deflate data (at most 1032:1).
  const std::size_t idat = whole.find("IDAT");
  REQUIRE(idat != std::string::npos);
  std::string long_chunk = whole;
  long_chunk[idat - 4] = '\x7F';
  CHECK_THROWS_WITH(decode(long_chunk, "long.png"), Catch::Contains("long.png: truncated PNG (chunk 'IDAT' claims 21"));
  std::string claims_more = whole;
  for (std::size_t at : {std::size_t(16), std::size_t(20)}) {
    const std::uint32_t v = 8000;
    for (int i = 0; i < 4; ++i) claims_more[at + std::size_t(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  }
  CHECK_THROWS_WITH(decode(claims_more, "sparse.png"), Catch::Contains("sparse.png: corrupt PNG ("));
  CHECK_THROWS_WITH(decode(claims_more, "sparse.png"), Catch::Contains("cannot hold the 192000000 bytes of pixels the header claims"));
  // A PNG header that claims 40000 x 10 pixels, wider than headnet decodes: refused before anything is decoded.
  std::string huge = whole.substr(0, 33);
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) huge[at + std::size_t(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  };
  put32(16, 40000);
  put32(20, 10);
  CHECK_THROWS_WITH(io::decode_image(reinterpret_cast<const unsigned char*>(huge.data()), huge.size(), "huge.png"),
                    Catch::Contains("huge.png: the image claims 40000x10 pixels"));
  CHECK_THROWS_AS(io::decode_image(reinterpret_cast<const unsigned char*>(whole.data()), whole.size(), "x", 4), Error);
  // A JPEG whose Huffman table declares 16 x 255 codes (stb_image would write past its table).
  std::string jpeg = "\xFF\xD8\xFF\xC4";
  jpeg += std::string("\x01\x13", 2);  // segment length 2 + 17 + 256 = 275
  jpeg += std::string(1, '\0');          // class 0, table 0
  jpeg += std::string(16, '\xFF');       // 16 counts of 255
  jpeg += std::string(256, '\x01');
  jpeg += "\xFF\xD9";
  CHECK_THROWS_WITH(io::decode_image(reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size(), "evil.jpg"),
                    Catch::Contains("evil.jpg: corrupt JPEG (a Huffman table declares 4080 codes, at most 256)"));
  // stb_image reads the start-of-image marker after any 0xFF fill bytes, so must the check (the
  // fuzzer found a file beginning FF FF D8 that went around it).
  const std::string filled = "\xFF\xFF\xFF" + jpeg.substr(1);
  CHECK_THROWS_WITH(io::decode_image(reinterpret_cast<const unsigned char*>(filled.data()), filled.size(), "filled.jpg"),
                    Catch::Contains("filled.jpg: corrupt JPEG (a Huffman table declares 4080 codes"));
  CHECK_THROWS_WITH(io::decode_image(reinterpret_cast<const unsigned char*>(whole.data()), 8, "gif.png"), Catch::Contains("PNG, JPEG and BMP are supported"));
  for (const char* f : {"empty.png", "text.png", "whole.png", "whole.bmp"}) std::remove(path_of(f).c_str());
}
