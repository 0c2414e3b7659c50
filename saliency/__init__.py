"""The paper's saliency benchmark (section 4.1, Tables 1-2): plant Trojan patches, score 10 captum
methods on the dense model and on the SPADE trace of each sample.

    spade-study trojan data/configs/trojan-cpu.toml --out trojan-model
    spade-study saliency data/configs/saliency-cpu.toml --model trojan-model --out saliency-run
"""
