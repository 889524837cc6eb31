// erlmr/train/plot.hpp — a dependency-free SVG line plot (accuracy curves per modality).
#pragma once
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace erlmr::train {

struct Series {
  std::string label, color;
  std::vector<double> y;  // one value per epoch (x = 1..n)
};

inline std::string svg_line_plot(const std::string& title, const std::string& ylabel, const std::vector<Series>& series,
                                 double ymin = 0, double ymax = 1) {
  const double W = 640, H = 400, L = 60, Rm = 150, T = 40, B = 50;
  const double pw = W - L - Rm, ph = H - T - B;
  std::size_t n = 0;
  for (const auto& s : series) n = std::max(n, s.y.size());
  const double xmax = std::max<double>(2, double(n));
  auto X = [&](double x) { return L + pw * (x - 1) / (xmax - 1); };
  auto Y = [&](double y) { return T + ph * (1 - (std::clamp(y, ymin, ymax) - ymin) / (ymax - ymin)); };
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(2);
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << title << "</text>\n";
  for (int i = 0; i <= 5; ++i) {  // horizontal grid
    const double v = ymin + (ymax - ymin) * i / 5;
    o << "<line x1=\"" << L << "\" x2=\"" << L + pw << "\" y1=\"" << Y(v) << "\" y2=\"" << Y(v) << "\" stroke=\"#ddd\"/>\n";
    o << "<text x=\"" << L - 6 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">" << v << "</text>\n";
  }
  const int xt = std::min<int>(static_cast<int>(n), 10);
  for (int i = 0; i <= xt && n > 1; ++i) {
    const double x = 1 + (xmax - 1) * i / std::max(1, xt);
    o << "<text x=\"" << X(x) << "\" y=\"" << T + ph + 18 << "\" text-anchor=\"middle\">" << static_cast<int>(x + 0.5) << "</text>\n";
  }
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\"" << ph << "\" fill=\"none\" stroke=\"#333\"/>\n";
  o << "<text x=\"" << L + pw / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">epoch</text>\n";
  o << "<text transform=\"translate(16," << T + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << ylabel << "</text>\n";
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"";
    for (std::size_t i = 0; i < s.y.size(); ++i) o << X(double(i + 1)) << ',' << Y(s.y[i]) << ' ';
    o << "\"/>\n";
    const double ly = T + 10 + 20 * double(k);
    o << "<line x1=\"" << L + pw + 12 << "\" x2=\"" << L + pw + 36 << "\" y1=\"" << ly << "\" y2=\"" << ly << "\" stroke=\"" << s.color
      << "\" stroke-width=\"2\"/>\n";
    o << "<text x=\"" << L + pw + 42 << "\" y=\"" << ly + 4 << "\">" << s.label << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace erlmr::train
