"""What loading a config needs of each stage: its settings record, its checks and its `StageSpec`.

One module per stage, and shared ones for settings several stages mix in. These modules import
no table, numeric or HTTP library, so a config is loaded and checked, and an error in it
reported, before any of those loads; what a stage does lives in its module one level up.
"""
