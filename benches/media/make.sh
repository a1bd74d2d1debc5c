#!/usr/bin/env bash
# Regenerates the harness's clips with FFmpeg 9 from PyPI's imageio-ffmpeg
# (pip install imageio-ffmpeg==0.8.1). One moving test picture, 4 s at
# 30 fps, a keyframe every 2 s, encoded once so publishing costs nothing.
set -euo pipefail
cd "$(dirname "$0")"
FFMPEG=$(python3 -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
SRC=(-f lavfi -i "testsrc2=size=1280x720:rate=30:duration=4")
VP8=(-c:v libvpx -deadline realtime -cpu-used 8 -g 60 -keyint_min 60 -auto-alt-ref 0 -lag-in-frames 0 -error-resilient 1 -bitexact)
vp8() { # name size kbps
    "$FFMPEG" -y -v error "${SRC[@]}" -vf "scale=$2" "${VP8[@]}" -b:v "$3k" -minrate "$3k" -maxrate "$3k" -bufsize "$3k" "$1"
}
vp8 vp8-q.ivf 320x180 150
vp8 vp8-h.ivf 640x360 400
vp8 vp8-f.ivf 1280x720 1000
"$FFMPEG" -y -v error "${SRC[@]}" -c:v libx264 -profile:v baseline -pix_fmt yuv420p -tune zerolatency -preset veryfast \
    -g 60 -keyint_min 60 -sc_threshold 0 -bf 0 -b:v 700k -maxrate 700k -bufsize 700k \
    -x264-params repeat-headers=1:aud=1 -bsf:v h264_metadata=aud=insert -f h264 h264.h264
"$FFMPEG" -y -v error -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=4" -ac 2 -c:a libopus -b:a 64k \
    -frame_duration 20 -application lowdelay -page_duration 20000 -f ogg opus.ogg
ls -l
