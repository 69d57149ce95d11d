# Sourced by the GPU training scripts (train_demo_bundle_gpu.sh, train_wide_bundle_gpu.sh).
# pack: the trained bundle in $WORK/bundle into $OUT. Weight files come back as 15 MB parts
# named after their path, "/" written "--" (the device tool returns only names of letters,
# digits, ".", "_" and "-"): ablations/ct_only/model-0.safetensors ->
# ablations--ct_only--model-0.safetensors.part00, ... (scripts/unpack_bundle.sh puts them back
# together). Ablation weights above $ABLATION_MAX_BYTES are left out.
pack() {
    (cd "$WORK/bundle" && tar czf "$OUT/bundle-meta.tar.gz" --exclude='model-*.safetensors' \
        --exclude=checkpoints --exclude=cache --exclude='ablations/*/model-*.safetensors' .)
    (cd "$WORK/bundle" && find . -name 'model-*.safetensors' -not -path './checkpoints/*' \
        \( -not -path './ablations/*' -o -size -"${ABLATION_MAX_BYTES}"c \) \
        | while read -r file; do
            split -b 15M -d "$file" "$OUT/$(echo "${file#./}" | sed 's|/|--|g').part"
        done)
}
