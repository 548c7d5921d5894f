# cmake -DIN=x.cu -DOUT=x.cpp -P rewrite.cmake: a .cu file as C++ for the CUDA emulator (see CMakeLists.txt).
file(READ ${IN} text)
string(REPLACE "<<<" " | ::glia_emu::Cfg{" text "${text}")
string(REPLACE ">>>" "} | ::glia_emu::args" text "${text}")
file(WRITE ${OUT}.tmp "#line 1 \"${IN}\"\n${text}")
file(RENAME ${OUT}.tmp ${OUT})
