// Modules of issue 21 (LSTM, GroupNorm, RMSNorm, Conv1d, BatchNorm1d, LeakyReLU, SiLU, AvgPool2d)
// against values computed with PyTorch 1.13 in float64 (RMSNorm: its formula, as torch 1.13 has
// none), and their errors on bad arguments.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "lethe.h"
#include "nn/nn.h"

using namespace lethe;
namespace nn = lethe::nn;

namespace {

void check_close(const std::vector<double>& got, const std::vector<double>& want,
                 double tol = 1e-10) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i)
    CHECK_MESSAGE(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])), "element ", i,
                  ": got ", got[i], ", want ", want[i]);
}

// 0.3 sin(0.7 i + j), the parameter values of the reference script.
Tensor fill(const Shape& s, int j) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.3 * std::sin(0.7 * static_cast<double>(i) + j);
  return from_vector(v, s);
}
// cos(0.9 i + j), the inputs of the reference script.
Tensor seq(const Shape& s, int j) {
  std::vector<double> v(static_cast<size_t>(s.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::cos(0.9 * static_cast<double>(i) + j);
  return from_vector(v, s);
}
void fill_parameters(nn::Module& m) {
  StateDict sd;
  int j = 0;
  for (auto& [name, p] : m.named_parameters()) sd.insert(name, fill(p.shape(), j++));
  m.load_state_dict(sd);
}
std::string printed(const nn::Module& m) {
  std::ostringstream os;
  m.pretty_print(os);
  return os.str();
}

}  // namespace

TEST_CASE("LSTM: two layers, batch_first, output and (h, c) and gradients as PyTorch") {
  Session s;
  nn::LSTM lstm(nn::LSTMOptions(3, 4).num_layers(2).batch_first(true).dtype(DType::f64));
  std::vector<std::string> names;
  for (auto& [n, p] : lstm.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                          "bias_hh_l0", "weight_ih_l1", "weight_hh_l1",
                                          "bias_ih_l1", "bias_hh_l1"});
  CHECK(lstm.layers[1].weight_ih.shape() == Shape{16, 4});
  fill_parameters(lstm);
  auto x = seq({2, 3, 3}, 0).set_requires_grad(true);
  auto [out, state] = lstm.forward(x);
  auto [h, c] = state;
  CHECK(out.shape() == Shape{2, 3, 4});
  CHECK(h.shape() == Shape{2, 2, 4});
  check_close(
      out.to_vector<double>(),
      {-0.05705485620267644, 0.02667468220578621,  0.10703327755805013, 0.10694937387796817,
       -0.10664934490818925, 0.053592432147344646, 0.14120293612321883, 0.14213544011887783,
       -0.1297413204947116,  0.06507254092090561,  0.15119286348086314, 0.15799354884824987,
       -0.06756378821260171, 0.034830720148132675, 0.10482553137561984, 0.106498629903984,
       -0.10446063730009278, 0.052623097860661217, 0.13996240743643767, 0.14459698513427183,
       -0.13317420561784568, 0.0644925018292429,   0.15484008365947968, 0.1538154553992389});
  check_close(
      h.to_vector<double>(),
      {0.051609498671751075, 0.15877712610666844, -0.01897366866898724, -0.24410312649688037,
       0.10407133781160617, 0.0697162224073828, 0.018673470846289043, -0.11947305887811817,
       -0.1297413204947116, 0.06507254092090561, 0.15119286348086314, 0.15799354884824987,
       -0.13317420561784568, 0.0644925018292429, 0.15484008365947968, 0.1538154553992389});
  check_close(
      c.to_vector<double>(),
      {0.1090231531053164, 0.39417924616568567, -0.055580651724259224, -0.40186290783337314,
       0.35171138428279247, 0.16054648337732366, 0.03717004109289532, -0.26868444995829827,
       -0.22368884449315368, 0.1263271305197454, 0.37227246982144957, 0.44676372114879814,
       -0.22709603921967197, 0.12723581760321115, 0.37409693730029847, 0.44301170237904886});
  add(out.sum(), c.sum()).backward();
  check_close(
      x.grad().to_vector<double>(),
      {-0.02188471521022619, -0.03215849777973811, -0.027307636353050207, 0.0007316472573938269,
       -0.003550667967078965, -0.006163048565916921, -0.11795887457814386, -0.20829542225626085,
       -0.20066737814150504, 0.005947039820343397, 0.004797263052497319, 0.0013912585117589475,
       -0.05675536067674004, -0.10282762987029458, -0.10053845800981147, -0.09211299842817526,
       -0.0682204678775009, -0.012242785309822202});
  auto gw = lstm.layers[0].weight_hh.grad().to_vector<double>();
  check_close({gw.begin(), gw.begin() + 6},
              {0.014807823159847138, 0.017858134876825357, 0.000602437120509465,
               -0.030915273286369616, 0.029478249622702166, 0.007889855349844443});
  CHECK(printed(lstm) == "LSTM(3, 4, num_layers=2, batch_first=true)");
}

TEST_CASE("LSTM: initial state, sequence first; bad shapes") {
  Session s;
  nn::LSTM lstm(nn::LSTMOptions(3, 4).dtype(DType::f64));
  fill_parameters(lstm);
  auto [o, st] = lstm.forward(seq({3, 2, 3}, 0), {seq({1, 2, 4}, 1), seq({1, 2, 4}, 2)});
  check_close(
      o.to_vector<double>(),
      {-0.06529805642708796, -0.10160240866215552, -0.12095068242710363,  -0.19710695724391852,
       0.13194409431077184,  0.24661244894840006,  -0.10759323337697996,  -0.05662921322809814,
       -0.03375457074123768, 0.08485863085403433,  -0.03446294082059376,  -0.3805066158242197,
       0.15288209665177183,  0.12504823816763821,  -0.09914672994658952,  -0.009374964435745082,
       0.03590563997416728,  0.12636074359159039,  -0.04275131346646087,  -0.39466397362676087,
       0.14636363974602162,  0.08624229239142789,  -0.004401850190872894, -0.04374039859505838});
  check_close(
      std::get<1>(st).to_vector<double>(),
      {0.07213437665454762, 0.38943158451283666, -0.10282864558016688, -0.7300695039639218,
       0.5280778948903806, 0.19631296572882964, -0.00887809332344354, -0.09516974123488124});
  CHECK_THROWS_WITH_AS(lstm.forward(seq({3, 2, 5}, 0)),
                       "LSTM: expected input [L, N, 3], got [3, 2, 5]", Error);
  CHECK_THROWS_WITH_AS(lstm.forward(seq({3, 2, 3}, 0), {seq({2, 2, 4}, 1), seq({2, 2, 4}, 2)}),
                       "LSTM: expected h0 and c0 [1, 2, 4], got [2, 2, 4] and [2, 2, 4]", Error);
}

TEST_CASE("GroupNorm and RMSNorm") {
  Session s;
  nn::GroupNorm gn(nn::GroupNormOptions(2, 4).dtype(DType::f64));
  gn.load_state_dict([] {
    StateDict sd;
    sd.insert("weight", from_vector<double>({1, 2, -1, 0.5}, {4}));
    sd.insert("bias", from_vector<double>({0, 0.1, 0.2, 0.3}, {4}));
    return sd;
  }());
  check_close(
      gn.forward(seq({2, 4, 3}, 0)).to_vector<double>(),
      {1.5492597264450256,  1.0177151460937572,   -0.1746562537107023, -2.150983138716059,
       -2.1304351806677895, -0.20321891827231126, -0.5936943940876673, -1.0755237883090438,
       -0.5589371962554052, 0.11743852592150153,  -0.3229951687541916, -0.3085210464933681,
       -0.516043503922587,  0.7644140924980999,   1.2995131685796417,  1.4686028231367496,
       -1.1312823720483913, -3.133087965398667,   1.7929183185823545,  0.707196203293319,
       -0.586179303689304,  0.9542037020576597,   0.6321381415022115,  -0.029374234466686445});
  CHECK_THROWS_WITH_AS(nn::GroupNorm(3, 4),
                       "GroupNorm: num_channels (4) must be divisible by num_groups (3)", Error);
  CHECK_THROWS_WITH_AS(gn.forward(seq({2, 3, 3}, 0)),
                       "GroupNorm: expected input [N, 4, *], got [2, 3, 3]", Error);

  nn::RMSNorm rn(nn::RMSNormOptions({3}).eps(1e-6).dtype(DType::f64));
  StateDict sd;
  sd.insert("weight", from_vector<double>({1, 2, 0.5}, {3}));
  rn.load_state_dict(sd);
  check_close(rn.forward(seq({2, 3}, 0)).to_vector<double>(),
              {1.4443676399541876, 1.795666645686194, -0.16408167665225104, -1.2131972977621521,
               -2.4067656481810342, -0.14143611021929287});
  auto x = seq({2, 3}, 0).set_requires_grad(true);
  auto r = autograd::gradcheck([&](const std::vector<Tensor>& v) { return rn.forward(v[0]); }, {x},
                               1e-6, 1e-6, 1e-4);
  CHECK_MESSAGE(r.ok, r.message);
  CHECK(nn::RMSNorm(nn::RMSNormOptions({3}).elementwise_affine(false)).parameters().empty());
  CHECK_THROWS_WITH_AS(rn.forward(seq({2, 4}, 0)),
                       "RMSNorm: expected input ending in [3], got [2, 4]", Error);
  CHECK(printed(nn::RMSNorm(nn::RMSNormOptions({3}))) ==
        "RMSNorm([3], eps=None, elementwise_affine=true)");
}

TEST_CASE("Conv1d: stride, padding, dilation, groups as PyTorch") {
  Session s;
  nn::Conv1d cv(nn::Conv1dOptions(4, 2, 3).stride(2).padding(1).dtype(DType::f64));
  CHECK(cv.weight.shape() == Shape{2, 4, 3});
  StateDict sd;
  sd.insert("weight", fill({2, 4, 3}, 0));
  sd.insert("bias", from_vector<double>({0.1, -0.2}, {2}));
  cv.load_state_dict(sd);
  auto y = cv.forward(seq({2, 4, 5}, 0));
  CHECK(y.shape() == Shape{2, 2, 3});
  check_close(
      y.to_vector<double>(),
      {0.8662300038249723, -0.2867422095457045, -0.44363641116611596, -0.5917801390051137,
       -0.4409314094818042, -0.6391442336762416, 1.0749736396321747, 0.24166113110066353,
       -0.10091427002473621, -0.26828486374909666, -0.20437097286445863, -0.968682397299361});
  nn::Conv1d cg(nn::Conv1dOptions(4, 4, 2).dilation(2).groups(2).bias(false).dtype(DType::f64));
  StateDict sg;
  sg.insert("weight", fill({4, 2, 2}, 1));
  cg.load_state_dict(sg);
  check_close(
      cg.forward(seq({1, 4, 5}, 0)).to_vector<double>(),
      {0.15460579378494146, 0.024161262637859556, -0.12456803038154335, -0.17320688473289841,
       -0.08542498606131876, 0.06700483898270182, -0.1407270694459503, -0.17029664030212005,
       -0.0709891089036526, 0.09567646383509486, 0.17989205057089452, 0.12796891985994177});
  CHECK_THROWS_WITH_AS(cv.forward(seq({2, 3, 5}, 0)),
                       "Conv1d: expected input [N, 4, L], got [2, 3, 5]", Error);
  CHECK_THROWS_WITH_AS(
      nn::Conv1d(nn::Conv1dOptions(4, 3, 2).groups(2)),
      "Conv1d: in_channels (4) and out_channels (3) must be divisible by groups (2)", Error);
  CHECK(printed(cv) == "Conv1d(4, 2, kernel_size=(3,), stride=(2,), padding=(1,))");
}

TEST_CASE("BatchNorm1d: [N, C] and [N, C, L], running statistics as PyTorch") {
  Session s;
  nn::BatchNorm1d bn(nn::BatchNorm1dOptions(3).dtype(DType::f64));
  auto y = bn.forward(seq({4, 3}, 0));
  s.flush();  // runs the running-statistics update (a side effect of the step)
  check_close(y.to_vector<double>(),
              {1.1788003523640351, 0.7700749355936759, -0.08944710073925197, -1.3769296123472512,
               -0.9797472912665627, -0.05854768397787863, 0.6884689501689043, 1.205982277616105,
               1.4842240178926243, -0.490339690185688, -0.9963099219432183, -1.3362292331754937},
              1e-9);
  check_close(bn.running_mean.to_vector<double>(),
              {0.012176914504744561, -0.0046605018391186115, -0.017970943305424328});
  check_close(bn.running_var.to_vector<double>(),
              {0.9740061446940064, 1.0003920715278385, 0.937587532245874});
  nn::BatchNorm1d bn3(nn::BatchNorm1dOptions(3).dtype(DType::f64));
  check_close(bn3.forward(seq({2, 3, 2}, 0)).to_vector<double>(),
              {0.999926053147016, -1.0347201293648232, -0.06632245661529776, -1.3278448242281211,
               -0.5695080952701861, 1.731348219232476, -0.9643718487051203, 0.9991659249229293,
               1.4909473904405939, -0.0967801095971751, -0.6177141501938062, -0.5441259737684832},
              1e-9);
  CHECK_THROWS_WITH_AS(
      bn.forward(seq({2, 3, 2, 2}, 0)),
      "BatchNorm1d: expected input [N, C] or [N, C, L] with C = 3, got [2, 3, 2, 2]", Error);
  CHECK(printed(bn).rfind("BatchNorm1d(3,", 0) == 0);
}

TEST_CASE("LeakyReLU, SiLU and AvgPool2d modules") {
  Session s;
  auto x = from_vector<double>({-2.0, -0.5, 0.0, 0.5, 3.0}, {5}).set_requires_grad(true);
  nn::LeakyReLU lr(nn::LeakyReLUOptions(0.2));
  auto y = lr.forward(x);
  check_close(y.to_vector<double>(), {-0.4, -0.1, 0.0, 0.5, 3.0});
  y.sum().backward();
  check_close(x.grad().to_vector<double>(), {0.2, 0.2, 0.2, 1.0, 1.0});
  CHECK(printed(lr) == "LeakyReLU(negative_slope=0.2)");
  CHECK(printed(nn::LeakyReLU()) == "LeakyReLU(negative_slope=0.01)");
  auto x2 = from_vector<double>({-2.0, -0.5, 0.0, 0.5, 3.0}, {5}).set_requires_grad(true);
  nn::SiLU si;
  auto z = si.forward(x2);
  check_close(z.to_vector<double>(), {-0.2384058440442351, -0.1887703343990727, 0.0,
                                      0.3112296656009273, 2.8577223804672998});
  z.sum().backward();
  check_close(x2.grad().to_vector<double>(), {-0.09078424878489547, 0.2600388126973482, 0.5,
                                              0.7399611873026519, 1.0881041060151693});
  nn::AvgPool2d ap(nn::AvgPool2dOptions(2).stride(1).padding(1));
  check_close(
      ap.forward(seq({1, 1, 2, 3}, 0)).to_vector<double>(),
      {0.25, 0.4054024920676661, 0.09860196839439432, -0.05680052367327178, 0.023981964495734698,
       -0.04480514752013595, -0.17828658554683735, -0.1094994735309667, -0.2260180355042653,
       -0.4502076395878021, -0.2768885539412317, -0.052698949857694924});
}

TEST_CASE(
    "ConvTranspose2d: stride, padding, output_padding, groups as PyTorch (values and gradients)") {
  Session s;
  nn::ConvTranspose2d ct(
      nn::ConvTranspose2dOptions(4, 6, 3).stride(2).padding(1).output_padding(1).groups(2).dtype(
          DType::f64));
  CHECK(ct.weight.shape() == Shape{4, 3, 3, 3});
  StateDict sd;
  sd.insert("weight", fill({4, 3, 3, 3}, 0));
  sd.insert("bias", from_vector<double>({0.1, -0.2, 0.3, 0, 0.5, -0.1}, {6}));
  ct.load_state_dict(sd);
  auto x = seq({1, 4, 2, 2}, 0).set_requires_grad(true);
  auto y = ct.forward(x);
  CHECK(y.shape() == Shape{1, 6, 4, 4});
  auto yv = y.to_vector<double>();
  check_close({yv.begin(), yv.begin() + 12},
              {0.12327138074402, 0.2097832689853197, 0.14431674408223222, 0.05972581510234191,
               0.15264569977224238, 0.10077425048968278, 0.008078993108046592, 0.050188739519421766,
               0.13182407902161108, 0.06505202470009636, 0.09524758541950132, 0.07589015824862204});
  check_close(y.sum().to_vector<double>(), {7.52724587946269});
  mul(y, y).sum().backward();
  check_close(
      x.grad().to_vector<double>(),
      {-0.3531288846937719, 0.2284269381805101, 0.425228366253789, -0.031044030030880743,
       -0.36794932839457184, 0.20657273562953388, 0.4197825336162715, -0.029992572187318767,
       -0.12322010049580107, 0.36635605638319174, -0.3627647109496078, -1.0334342981748583,
       -0.15211738886859025, 0.33663238347958846, -0.35411696719108443, -1.048124806073839});
  auto wg = ct.weight.grad().to_vector<double>();
  check_close({wg.begin(), wg.begin() + 6},
              {-0.18221438500074277, -0.08397083067735664, -0.1365407240896835, 0.1431832957290359,
               0.19383742399408666, 0.32703859362858445});
  CHECK_THROWS_WITH_AS(ct.forward(seq({1, 3, 2, 2}, 0)),
                       "ConvTranspose2d: expected input [N, 4, H, W], got [1, 3, 2, 2]", Error);
  CHECK_THROWS_WITH_AS(
      conv_transpose2d(seq({1, 4, 2, 2}, 0), fill({4, 3, 3, 3}, 0), Tensor(), {}, {1, 1}),
      "conv_transpose2d: output_padding (1, 1) must be smaller than stride or dilation", Error);
  CHECK(printed(ct) ==
        "ConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
        "output_padding=(1, 1), groups=2)");
}

TEST_CASE("Embedding padding_idx: that row starts at zeros and gets no gradient") {
  Session s;
  nn::Embedding e(nn::EmbeddingOptions(5, 3).padding_idx(-1).dtype(DType::f64));
  auto w = e.weight.to_vector<double>();
  CHECK(w[12] == 0.0);
  CHECK(w[14] == 0.0);
  auto idx = from_vector<int64_t>({0, 4, 1, 4}, {2, 2});
  e.forward(idx).sum().backward();
  auto g = e.weight.grad().to_vector<double>();
  check_close(g, {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK(printed(e) == "Embedding(5, 3, padding_idx=-1)");
  CHECK_THROWS_WITH_AS(nn::Embedding(nn::EmbeddingOptions(5, 3).padding_idx(5)),
                       "Embedding: padding_idx must be within num_embeddings (5), got 5", Error);
}

TEST_CASE(
    "Pooling options as PyTorch: max dilation and ceil_mode, avg count_include_pad and "
    "divisor_override") {
  Session s;
  auto x = seq({1, 1, 5, 6}, 0).set_requires_grad(true);
  nn::MaxPool2d mp(
      nn::MaxPool2dOptions({2, 3}).stride(2).padding(1).dilation({2, 1}).ceil_mode(true));
  auto y = mp.forward(x);
  CHECK(y.shape() == Shape{1, 1, 3, 4});
  check_close(y.to_vector<double>(),
              {0.9998586363834151, 0.9998586363834151, -0.2435441537357911, -0.8891911526253609,
               0.9998586363834151, 0.9998586363834151, 0.9987279672435014, -0.27601710124946705,
               -0.17780907112311564, 0.9987279672435014, 0.9987279672435014, -0.27601710124946705});
  mul(y, y).sum().backward();
  check_close(x.grad().to_vector<double>(), {0.0, 0.0,
                                             0.0, 0.0,
                                             0.0, 0.0,
                                             0.0, 7.998869091067321,
                                             0.0, -0.4870883074715822,
                                             0.0, -1.7783823052507217,
                                             0.0, 0.0,
                                             0.0, 0.0,
                                             0.0, 0.0,
                                             0.0, -0.3556181422462313,
                                             0.0, 5.992367803461009,
                                             0.0, -1.1040684049978682,
                                             0.0, 0.0,
                                             0.0, 0.0,
                                             0.0, 0.0});

  auto x2 = seq({1, 1, 5, 6}, 0).set_requires_grad(true);
  nn::AvgPool2d ap(
      nn::AvgPool2dOptions(3).stride(2).padding(1).ceil_mode(true).count_include_pad(false));
  auto a = ap.forward(x2);
  CHECK(a.shape() == Shape{1, 1, 3, 4});
  check_close(a.to_vector<double>(),
              {0.8140403701491785, 0.1425002547900658, -0.6759153210046361, -0.5499934760280702,
               0.17143939717320697, 0.5653169987787909, -0.14696226263950177, -0.6943796780963737,
               -0.7142394941232469, 0.18659056471085197, 0.5903634420549152, 0.1457707517810384});
  mul(a, a).sum().backward();
  check_close(
      x2.grad().to_vector<double>(),
      {0.40702018507458926,  0.4545202700046112,   0.04750008493002194,  -0.17780502207152343,
       -0.22530510700154538, -0.7752985830296156,  0.46416665079899155,  0.6372927354576338,
       0.17312608465864215,  -0.08483730292945918, -0.25796338758810133, -1.270876649013754,
       0.05714646572440232,  0.18277246545302253,  0.1256259997286202,   0.09296771914206425,
       -0.03265828058655595, -0.4955780659841384,  -0.2999732813372211,  -0.11215042670498362,
       0.18782285463223752,  0.35195238806398665,  0.1641295334317491,   -0.1530195001847949,
       -0.35711974706162347, -0.29492289215800616, 0.06219685490361732,  0.2589846689219224,
       0.19678781401830506,  0.34255856579934346});
  check_close(
      avg_pool2d(seq({1, 1, 5, 6}, 0), {3, 3}, {2, 2}, {1, 1}, true, true).to_vector<double>(),
      {0.36179572006630156, 0.09500016986004386, -0.45061021400309076, -0.18333115867602343,
       0.11429293144880465, 0.5653169987787909, -0.14696226263950177, -0.34718983904818684,
       -0.3174397751658875, 0.12439370980723465, 0.3935756280366101, 0.04859025059367947});
  nn::AvgPool2d ad(nn::AvgPool2dOptions(2).divisor_override(3));
  check_close(ad.forward(seq({1, 1, 5, 6}, 0)).to_vector<double>(),
              {1.0853871601989047, -0.2554890253045616, -0.9692918767583215, -0.20197170976226922,
               1.0844666414328261, -0.29081447535436017});
  CHECK_THROWS_WITH_AS(avg_pool2d(seq({1, 1, 5, 6}, 0), {2, 2}, {2, 2}, {0, 0}, false, true, 0),
                       "avg_pool2d: divisor_override must be positive, got 0", Error);
}

TEST_CASE("BatchNorm momentum=None: cumulative average and num_batches_tracked, as PyTorch") {
  Session s;
  nn::BatchNorm1d bn(nn::BatchNorm1dOptions(3).momentum(std::nullopt).dtype(DType::f64));
  for (int j = 0; j < 3; ++j) {
    bn.forward(seq({4, 3}, j));
    s.flush();
  }
  check_close(bn.running_mean.to_vector<double>(),
              {-0.04548451513585262, -0.12976663439004674, -0.11584395183572285});
  check_close(bn.running_var.to_vector<double>(),
              {0.6583639007327633, 0.6225728706212392, 0.630858926891634});
  CHECK(bn.num_batches_tracked.item<int64_t>() == 3);
  std::vector<std::string> keys;
  for (const auto& [k, t] : bn.state_dict()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                         "num_batches_tracked"});
  CHECK(printed(bn).find("momentum=None") != std::string::npos);
  // With a momentum the key stays PyTorch's optional extra: accepted on load, not saved.
  nn::BatchNorm1d bm(nn::BatchNorm1dOptions(3).dtype(DType::f64));
  CHECK_FALSE(bm.num_batches_tracked.defined());
  CHECK(bm.load_state_dict(bn.state_dict()).ok());
}

TEST_CASE("MaxPool2d::forward_with_indices gives torch's flat indices in the input plane") {
  // One plane [1, 1, 3, 4]; 2x2 windows, stride 2, ceil_mode: the last row's windows are cut.
  Tensor x = from_vector<float>({1, 5, 2, 0, 7, 3, 9, 4, 6, 8, 1, 2}, {1, 1, 3, 4});
  nn::MaxPool2d pool(nn::MaxPool2dOptions(2).stride(2).ceil_mode(true));
  auto [y, idx] = pool.forward_with_indices(x);
  CHECK(y.to_vector<float>() == std::vector<float>{7, 9, 8, 2});
  CHECK(idx.dtype() == DType::i64);
  // torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)[1]
  CHECK(idx.to_vector<int64_t>() == std::vector<int64_t>{4, 6, 9, 11});
  CHECK(idx.shape() == Shape{1, 1, 2, 2});
}

TEST_CASE("TransformerBlock drops between its linears as PyTorch does, unless mlp_dropout(false)") {
  auto run = [](bool mlp_dropout, bool training) {
    Session s({.seed = 4});
    nn::TransformerBlock block(
        nn::TransformerBlockOptions(8, 2).dropout(0.5).mlp_dropout(mlp_dropout));
    if (!training) block.eval();
    return block.forward(randn({2, 3, 8})).to_vector<float>();
  };
  CHECK(run(true, true) != run(false, true));    // one more dropout in training
  CHECK(run(true, false) == run(false, false));  // none in evaluation
}
