{
  "targets": [
    {
      "target_name": "aybiza_media",
      "sources": [
        "native/addon.cc",
        "native/g711.cc",
        "native/vad.cc",
        "native/dtmf.cc",
        "native/beep.cc",
        "native/media_channel.cc",
        "native/plc.cc",
        "native/jitter_buffer.cc",
        "native/jitter_buffer_delay.cc",
        "native/tsm.cc",
        "native/jitter_buffer_js.cc",
        "native/recording_writer.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags!": ["-fno-exceptions", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros", "-freciprocal-math", "-fexceptions", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros", "-freciprocal-math"]
      }
    },
    {
      "target_name": "aybiza_reuseport",
      "sources": ["native/reuseport.cc"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "aybiza_thread_exit",
      "sources": ["native/thread_exit.cc"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
