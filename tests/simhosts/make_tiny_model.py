"""Generate a tiny Llama model for the simulated hosts: a BPE tokenizer trained with `tokenizers` on generated
text, and random weights saved with `transformers`. Runs inside the test image (which carries both).

vLLM's CPU attention needs head_dim 64 (16 is refused), so: hidden 128 = 2 heads x 64.
Two layers, so a pipeline-parallel split over two nodes is possible in principle.
Usage: python make_tiny_model.py OUTPUT_DIR
"""

import json
import random
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = ("ray node worker leader model cache serve token vector layer tensor pipeline parallel host "
         "engine bridge address health ready alpha beta gamma delta the a of to and is in on").split()


def corpus(n_lines: int, rng: random.Random):
    for _line in range(n_lines):
        yield " ".join(rng.choice(WORDS) for _word in range(rng.randint(4, 16)))


def main(out: Path) -> None:
    rng = random.Random(1234)
    torch.manual_seed(1234)
    out.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(2000, rng), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.model_max_length = 256
    fast.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=256,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    (out / "nimops-tiny-model.json").write_text(json.dumps({"generated_by": "tests/simhosts/make_tiny_model.py",
                                                            "weights": "random", "seed": 1234}) + "\n")
    print(f"tiny model written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
