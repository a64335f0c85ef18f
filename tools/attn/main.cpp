// placeholder until the attn command lands
#include <attn/attn.hpp>
int main() { return 0; }
